"""The rules one value of an export file must meet to become a row: text that fits and can
be stored, token counts a column holds, dates the database can store and read back; and
the links between a conversation's messages (``Links``: parents there, no loop).

``Checker`` collects every problem with where it is, keeping the first few to show; the
reading of the file itself (a stream of JSON events) is ``import_events``'s.
"""

import json
import os
import uuid
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from streaming.exceptions import ChatError
from streaming.text import check_storable

# Problems listed before the rest are only counted: enough to fix a file by.
MAX_PROBLEMS = 20
# The ids in a file are the export's UUIDs, or any short label in a file written by hand.
ID_MAX_CHARS = 100
# What a PositiveIntegerField holds on every database.
MAX_TOKENS = 2_147_483_647


class Checker:
    """Checks the values of a file, collecting every problem with where it is."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.count = 0
        self.now = timezone.now()

    def problem(self, where: str, text: str) -> None:
        self.count += 1
        if len(self.problems) < MAX_PROBLEMS:  # the rest only counted: memory stays bounded
            self.problems.append(f"{where}: {text}" if where else text)

    def listed(self) -> list[str]:
        """The problems to show: the first MAX_PROBLEMS, and how many more there are."""
        more = self.count - len(self.problems)
        return [*self.problems, f"… and {more} more."] if more else list(self.problems)

    def fields(
        self, value: Any, where: str, required: set[str], optional: set[str]
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(where, f"must be an object, not {kind(value)}.")
            return None
        missing = sorted(required - value.keys())
        for name in missing:
            self.problem(where, f'the field "{name}" is missing.')
        for name in sorted(value.keys() - required - optional):
            self.problem(where, f'unknown field "{name}".')
        return None if missing else value

    def text(
        self, value: Any, where: str, limit: int, *, blank: bool = True, default: str = ""
    ) -> str:
        if value is None and blank:
            return default
        if not isinstance(value, str):
            self.problem(where, f"must be text, not {kind(value)}.")
            return default
        if not blank and not value.strip():
            self.problem(where, "must not be empty.")
        if len(value) > limit:
            self.problem(where, f"is {len(value):,} characters long; the limit is {limit:,}.")
        try:
            check_storable(value, what="The text")
        except ChatError as exc:
            self.problem(where, exc.message)
        return value

    def tokens(self, value: Any, where: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"must be a whole number or null, not {kind(value)}.")
            return None
        if not 0 <= value <= MAX_TOKENS:
            self.problem(where, f"must be between 0 and {MAX_TOKENS:,}.")
            return None
        return value

    def moment(self, value: Any, where: str) -> datetime | None:
        """A date and time with its offset, in UTC: what every database stores as given and
        reads back (an offset of +23:59, or of seconds, is stored by no column as such)."""
        if value is None:
            return None
        moment = parse_moment(value)
        if moment is None:
            self.problem(where, "must be a date and time with its offset (ISO 8601).")
            return None
        try:
            utc = moment.astimezone(UTC)
        except OverflowError:
            self.problem(where, "must be between the years 1 and 9999 in UTC.")
            return None
        # Never later than now: a message "from the future" would count in every time
        # window (the rate limit's) and top the list for ever.
        return min(utc, self.now)

    def choice(self, value: Any, where: str, choices: list[str], default: str) -> str:
        if value is None:
            return default
        if value not in choices:
            self.problem(where, f"must be one of {', '.join(choices)}, not {short(value)}.")
            return default
        return str(value)

    def key(self, value: Any, where: str, *, nullable: bool) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value or len(value) > ID_MAX_CHARS:
            self.problem(where, f"must be an id (text of 1 to {ID_MAX_CHARS} characters).")
            return None
        return value


def parse_moment(value: Any) -> datetime | None:
    """An ISO 8601 date and time with its offset, as written; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def kind(value: Any) -> str:
    """What a JSON value is, in words."""
    names = {dict: "an object", list: "a list", str: "text", bool: "true or false"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def short(value: Any) -> str:
    """A JSON value as written, cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


@dataclass
class Links:
    """The links between one conversation's messages, compact: an index per id, and per
    index its new id (16 bytes), its parent's index and whether the file defined it."""

    where: str
    index: dict[str, int] = field(default_factory=dict)
    ids: bytearray = field(default_factory=bytearray)
    parents: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]
    defined: bytearray = field(default_factory=bytearray)
    # (message number, parent index) of each parent named before its message came.
    ahead: list[tuple[int, int]] = field(default_factory=list)

    def of(self, key: str) -> int:
        at = self.index.get(key)
        if at is None:
            at = self.index[key] = len(self.defined)
            self.ids += os.urandom(16)
            self.parents.append(-1)
            self.defined.append(0)
        return at

    def new_id(self, at: int) -> uuid.UUID:
        return uuid.UUID(bytes=bytes(self.ids[16 * at : 16 * at + 16]), version=4)

    def add(self, checker: Checker, number: int, key: str, parent_key: str | None) -> int:
        """Place message ``number`` (``key``, following ``parent_key``); its index."""
        at = self.of(key)
        if self.defined[at]:
            checker.problem(self.where, f'two messages have the id "{key}".')
        self.defined[at] = 1
        if parent_key is not None:
            parent = self.of(parent_key)
            self.parents[at] = parent
            if parent >= at or not self.defined[parent]:  # itself, or one still to come
                self.ahead.append((number, parent))
        return at

    def check(self, checker: Checker, leaf_key: str | None) -> None:
        """Every parent and the leaf a message of this conversation, with no loop."""
        keys = {at: key for key, at in self.index.items() if not self.defined[at]}
        for number, parent in self.ahead:
            if not self.defined[parent]:
                checker.problem(
                    f"{self.where}, message {number}, parent_id",
                    f'"{keys[parent]}" is no message of this conversation.',
                )
        if leaf_key is not None and (
            leaf_key not in self.index or not self.defined[self.index[leaf_key]]
        ):
            checker.problem(
                f"{self.where}, leaf_id", f'"{leaf_key}" is no message of this conversation.'
            )
        if self.ahead:  # a loop needs a parent named before its message came
            self._check_loops(checker)

    def _check_loops(self, checker: Checker) -> None:
        names = {at: key for key, at in self.index.items()}
        state = bytearray(len(self.defined))  # 0: unseen, 1: on the path walked, 2: done
        for start in range(len(state)):
            path = []
            node = start
            while node >= 0 and state[node] == 0 and self.defined[node]:
                state[node] = 1
                path.append(node)
                node = self.parents[node]
            if node >= 0 and state[node] == 1:
                checker.problem(
                    self.where, f'the message "{names[node]}" follows itself, through its parents.'
                )
            for at in path:
                state[at] = 2

    def leaf(self, leaf_key: str | None) -> uuid.UUID | None:
        return self.new_id(self.index[leaf_key]) if leaf_key is not None else None
