"""Deterministic answers: the same prompt always yields the same tokens.

Words are drawn from random.Random seeded with a SHA-256 of the prompt (hash() is salted per
process, so it would not do). Only Random.random() is called: it is the one method Python
promises to keep stable across versions for a given seed; choice() and friends are not.

Tokens are words with their leading whitespace, as real models stream them, so joining them
gives the text. Every answer opens with curly quotes and the prose mixes in accented words,
dashes and an emoji, so multi-byte UTF-8 crosses chunk boundaries in every test.
"""

import hashlib
import random
import re
from collections.abc import Iterator, Sequence
from typing import Any

from .payloads import data_url

ECHO_WORDS = 8
"""How many words of the prompt the opening sentence quotes."""

_WORDS = (
    *("the", "a", "every", "some", "this", "that", "and", "but", "or", "with", "without"),
    *("under", "across", "between", "before", "after", "slowly", "quietly", "again", "never"),
    *("river", "signal", "stream", "token", "morning", "window", "garden", "machine", "letter"),
    *("bridge", "lantern", "harbour", "question", "answer", "pattern", "engine", "meadow"),
    *("small", "bright", "careful", "distant", "patient", "hollow", "gentle", "electric"),
    *("walks", "carries", "remembers", "builds", "answers", "returns", "waits", "listens"),
    *("opens", "writes", "reads", "follows", "gathers", "measures", "repairs", "settles"),
    # Two-byte and three-byte UTF-8 inside ordinary words.
    *("café", "naïve", "résumé", "façade", "jalapeño", "crème", "fiancée", "Zürich", "東京"),
)
_SYMBOLS = ("—", "…", "→", "½", "🙂", "✨")
"""Stand-alone tokens; the emoji are four bytes each."""
_ENDINGS = (".", ".", ".", ".", "!", "?")


def answer_tokens(prompt: str) -> Iterator[str]:
    """Yield the answer to `prompt` one token at a time, without end: an echo, then prose."""
    words = prompt.split()
    if words:
        quoted = " ".join(words[:ECHO_WORDS]) + ("…" if len(words) > ECHO_WORDS else "")
        opening = f"You said “{quoted}”."
    else:
        opening = "You said nothing."
    first, *rest = opening.split(" ")
    yield first
    for word in rest:
        yield " " + word
    yield from _prose(_seeded("answer", prompt), separator="\n\n")


def reasoning_tokens(prompt: str) -> Iterator[str]:
    """Yield deterministic "thinking" about `prompt` one token at a time, without end."""
    yield from ("Let", " me", " think", " about", " this.")
    yield from _prose(_seeded("reasoning", prompt), separator=" ")


def _seeded(purpose: str, prompt: str) -> random.Random:
    digest = hashlib.sha256(f"{purpose}\0{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _prose(rng: random.Random, *, separator: str) -> Iterator[str]:
    """Sentences of 4-12 words in paragraphs of 2-5 sentences; `separator` precedes the first."""

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.random() * len(options))]

    while True:
        for _ in range(2 + int(rng.random() * 4)):
            length = 4 + int(rng.random() * 9)
            for position in range(length):
                word = pick(_WORDS)
                if position == 0:
                    word = word[:1].upper() + word[1:]
                elif rng.random() < 0.06:
                    yield " " + pick(_SYMBOLS)
                if position == length - 1:
                    word += pick(_ENDINGS)
                elif position > 0 and rng.random() < 0.08:
                    word += ","
                yield separator + word
                separator = " "
        separator = "\n\n"


MARKDOWN_SAMPLE = r"""## A rich answer

Some **bold**, some *emphasis*, ~~struck~~ text and `inline_code()`; see the
[Python docs](https://docs.python.org/3/) or https://example.org/plain.

### A table

| Language | Typing | Since |
|----------|--------|------:|
| Python | dynamic | 1991 |
| JavaScript | dynamic | 1995 |

### Lists

- first point
- second point
  - nested point

* [x] write the renderer
* [ ] ship it

### Code

```python
def greet(name: str) -> str:
    # Say hello.
    return f"Hello, {name}!"  # a <b>comment</b>
```

```javascript
const answer = [1, 2, 3].map((n) => n * 2);
console.log(`doubled: ${answer}`);
```

Inline math $e^{i\pi} + 1 = 0$ and \(a^2 + b^2 = c^2\), then display math:

$$\int_0^1 x^2 \, dx = \frac{1}{3}$$

![A diagram that must not load](https://images.example.com/diagram.png)
"""
"""What `sim:markdown=1` answers: one of each thing the chat page renders."""


def markdown_tokens() -> list[str]:
    """The Markdown sample one token at a time: each word with the whitespace before it."""
    return re.findall(r"\s*\S+", MARKDOWN_SAMPLE)


def repeated_markdown_tokens() -> Iterator[str]:
    """The Markdown sample's tokens, then the sample again after a blank line, without end:
    an answer as long as `sim:tokens` asks, for the rendering benchmark."""
    first, *rest = markdown_tokens()
    yield first
    yield from rest
    while True:
        yield "\n\n" + first
        yield from rest


def describe_parts(content: Any) -> str:
    """What `sim:parts=1` answers: a line for each part of a message's `content` (a string is
    one text part), so a test reads exactly what the model was sent::

        part 1: text 42 chars sha256=<hex of its UTF-8>
        part 2: image_url image/png 4567 bytes sha256=<hex of the bytes> detail=high
        part 3: image_url url 31 chars sha256=<hex of the URL>

    A text part's text is counted as sent, `sim:` words and all; an image is its data: URL's
    media type and decoded bytes, or, given by address, the address; `detail` only if sent.
    """
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    lines = []
    for number, part in enumerate(parts, start=1):
        if part["type"] == "text":
            text = part["text"]
            lines.append(f"part {number}: text {len(text)} chars sha256={_sha256_text(text)}")
            continue
        image = part["image_url"]
        url = image["url"]
        decoded = data_url(url)
        if decoded is None:
            what = f"url {len(url)} chars sha256={_sha256_text(url)}"
        else:
            digest = hashlib.sha256(decoded.data).hexdigest()
            what = f"{decoded.media_type} {len(decoded.data)} bytes sha256={digest}"
        detail = f" detail={image['detail']}" if "detail" in image else ""
        lines.append(f"part {number}: image_url {what}{detail}")
    return "\n".join(lines)


def parts_tokens(content: Any) -> list[str]:
    """describe_parts(content) one token at a time: each word with the whitespace before it."""
    return re.findall(r"\s*\S+", describe_parts(content))


def _sha256_text(text: str) -> str:
    # JSON can carry half of a surrogate pair (\ud800), which strict UTF-8 has no bytes for.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
