"""Per-request control: `sim:key=value` words in the last user message.

A test steers the simulator from the prompt itself, so the code under test sends an ordinary
request and needs no side channel. Typos fail loudly (DirectiveError, answered with a 400):
a misspelt fault that silently streamed a normal answer would let a broken test pass.
"""

import math
from dataclasses import dataclass
from typing import Literal, NoReturn, TypeVar, cast, get_args

PREFIX = "sim:"
#: The longest answer `sim:tokens` may ask for.
MAX_TOKENS = 100_000

Fault = Literal["error", "drop", "stall", "badjson"]
TokenField = Literal["max_tokens", "max_completion_tokens"]

_T = TypeVar("_T")


class DirectiveError(ValueError):
    """A `sim:` word the simulator does not understand; the message names the word."""


@dataclass(frozen=True)
class Directives:
    """What the last user message asked of the simulator; None means "the server's default"."""

    tokens: int | None = None
    """Answer length in content tokens."""
    rate: float | None = None
    """Tokens per second; 0 sends without delay."""
    status: int | None = None
    """HTTP status to answer with, with an OpenAI error body, instead of a completion."""
    retry_after: int | None = None
    """Seconds for a Retry-After header on the `status` reply."""
    times: int | None = None
    """Answer with `status` only this many times per distinct message, then answer normally."""
    fault: Fault | None = None
    """What goes wrong mid-answer."""
    after: int = 3
    """Content tokens sent before the fault."""
    stall: float = 3600.0
    """Seconds of silence for the "stall" fault."""
    reasoning: int = 0
    """Reasoning tokens (`reasoning_content` deltas) sent before the content."""
    keepalive: bool = False
    """Send SSE comment lines now and then, as OpenRouter does."""
    azure: bool = False
    """Open the stream with Azure's prompt-filter chunk (empty `choices`)."""
    nodelta: bool = False
    """Send one chunk whose choice has no `delta` key."""
    stamp: bool = False
    """Replace each content token with the time it was written (see stamps.py)."""
    echokey: bool = False
    """Name the model as the API key the request carried, in every chunk and error, as a
    careless provider or proxy might: what the client stores and shows must not have it."""
    markdown: bool = False
    """Answer with a fixed sample of rich Markdown (text.MARKDOWN_SAMPLE) instead of prose;
    with `tokens` longer than the sample, the sample again and again."""
    parts: bool = False
    """Answer with a line for each part of the last user message's content, saying what it
    is, how long, and its SHA-256 (text.describe_parts), instead of prose."""
    refuse: TokenField | None = None
    """Refuse a request carrying this token-limit field, as OpenAI's newer models refuse
    `max_tokens` and older servers `max_completion_tokens`."""
    words: tuple[str, ...] = ()
    """The directive words as written, for the request log."""

    @property
    def summary(self) -> str:
        """The directives as one short string for a log line."""
        return " ".join(self.words) or "-"


def split_directives(text: str) -> tuple[str, Directives]:
    """Return `text` without its `sim:` words, and what those words ask for.

    Raises DirectiveError for an unknown key, a repeated key, a bad value, or a key that only
    makes sense with another one (`sim:after` without `sim:fault`, for instance).
    """
    kept: list[str] = []
    raw: dict[str, str] = {}
    written: dict[str, str] = {}
    for word in text.split():
        if not word.startswith(PREFIX):
            kept.append(word)
            continue
        key, sep, value = word[len(PREFIX) :].partition("=")
        if not sep or not key or not value:
            raise DirectiveError(f"Malformed simulator directive {word!r}: expected sim:key=value.")
        if key not in _KNOWN:
            known = ", ".join(sorted(_KNOWN))
            raise DirectiveError(f"Unknown simulator directive {word!r}. Known keys: {known}.")
        if key in raw:
            raise DirectiveError(f"Simulator directive {word!r} repeats sim:{key}.")
        raw[key] = value
        written[key] = word

    values = _Values(raw, written)
    fault_name = values.choice("fault", get_args(Fault))
    refuse = values.choice("refuse", get_args(TokenField))
    directives = Directives(
        tokens=values.integer("tokens", maximum=MAX_TOKENS),
        rate=values.number("rate", maximum=1_000_000),
        status=values.integer("status", minimum=400, maximum=599),
        retry_after=values.integer("retry_after", maximum=86_400),
        times=values.integer("times", minimum=1, maximum=1_000_000),
        fault=cast(Fault | None, fault_name),
        after=_default(values.integer("after", maximum=100_000), 3),
        stall=_default(values.number("stall", maximum=86_400), 3600.0),
        reasoning=_default(values.integer("reasoning", maximum=100_000), 0),
        keepalive=values.flag("keepalive"),
        azure=values.flag("azure"),
        nodelta=values.flag("nodelta"),
        stamp=values.flag("stamp"),
        echokey=values.flag("echokey"),
        markdown=values.flag("markdown"),
        parts=values.flag("parts"),
        refuse=cast(TokenField | None, refuse),
        words=tuple(written.values()),
    )
    _require(written, "retry_after", "status", directives.status is not None)
    _require(written, "times", "status", directives.status is not None)
    _require(written, "after", "fault", directives.fault is not None)
    _require(written, "stall", "fault=stall", directives.fault == "stall")
    if directives.parts and directives.markdown:
        raise DirectiveError("sim:parts and sim:markdown each choose the answer's text: use one.")
    return " ".join(kept), directives


_KNOWN = frozenset(
    (
        "tokens",
        "rate",
        "status",
        "retry_after",
        "times",
        "fault",
        "after",
        "stall",
        "reasoning",
        "keepalive",
        "azure",
        "nodelta",
        "stamp",
        "echokey",
        "markdown",
        "parts",
        "refuse",
    )
)


class _Values:
    """Typed access to the raw `key=value` pairs, with errors that quote the word as written."""

    def __init__(self, raw: dict[str, str], written: dict[str, str]) -> None:
        self._raw = raw
        self._written = written

    def integer(self, key: str, *, minimum: int = 0, maximum: int) -> int | None:
        value = self._raw.get(key)
        if value is None:
            return None
        if not (value.isascii() and value.isdigit()) or not minimum <= int(value) <= maximum:
            self._fail(key, f"a whole number from {minimum} to {maximum}")
        return int(value)

    def number(self, key: str, *, maximum: float) -> float | None:
        value = self._raw.get(key)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and 0 <= number <= maximum):
            self._fail(key, f"a number from 0 to {maximum:g}")
        return number

    def choice(self, key: str, options: tuple[str, ...]) -> str | None:
        value = self._raw.get(key)
        if value is not None and value not in options:
            self._fail(key, "one of " + ", ".join(options))
        return value

    def flag(self, key: str) -> bool:
        value = self._raw.get(key)
        if value is None:
            return False
        if value not in ("0", "1", "true", "false"):
            self._fail(key, "1 or 0")
        return value in ("1", "true")

    def _fail(self, key: str, expected: str) -> NoReturn:
        raise DirectiveError(
            f"Bad simulator directive {self._written[key]!r}: expected {expected}."
        )


def _default(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _require(written: dict[str, str], key: str, needs: str, present: bool) -> None:
    if key in written and not present:
        raise DirectiveError(f"Simulator directive {written[key]!r} needs sim:{needs}.")
