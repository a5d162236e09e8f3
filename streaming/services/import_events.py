"""An export file as a stream of JSON events, for ``imports``: read in chunks, checked on
the way for what the parser would not say (bytes that are not UTF-8, half a surrogate pair
written as an escape), refused past an export's depth, and built into values one small
object at a time (ijson's C parser; its basic events, without path strings that grow with
depth)."""

import codecs
import re
from typing import Any, Protocol

import ijson

from streaming.exceptions import ImportRefused
from streaming.services.import_checks import kind

# An export nests four deep (the file, its list, a conversation, its messages, a message);
# anything far deeper is no export, and is refused before it costs anything.
_MAX_DEPTH = 16
# Bytes read from the upload at a time.
_CHUNK = 64 * 1024


class Readable(Protocol):
    """What an export file is read from: an upload, ``Bytes``, a ZIP's member."""

    def read(self, size: int = -1, /) -> bytes: ...


class Bytes:
    """A file-like view of bytes, read in chunks as an upload is."""

    def __init__(self, raw: bytes) -> None:
        self._view = memoryview(raw)
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._at + size
        piece = bytes(self._view[self._at : end])
        self._at += len(piece)
        return piece


class _Checked:
    """The upload, read in chunks and checked on the way to the parser for what it would
    not say or would hide: bytes that are not UTF-8 (it says only "invalid char"), and
    half a surrogate pair written as an escape (``\\ud800`` alone), which it turns into
    "?" where the rule of every other way in is to refuse it (streaming.text)."""

    def __init__(self, file: Readable) -> None:
        self._file = file
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._carry = b""  # the end of the last chunk, where an escape may be cut
        self._read = 0  # bytes read before the carry

    def read(self, size: int = _CHUNK) -> bytes:
        piece = self._file.read(size)
        try:
            self._decoder.decode(piece, final=not piece)
        except UnicodeDecodeError:
            raise ImportRefused(
                ["The file is not UTF-8 text: is it an export of this site?"]
            ) from None
        self._surrogates(piece)
        return piece

    def _surrogates(self, piece: bytes) -> None:
        text = self._carry + piece
        # Only what no later chunk can change is judged: an escape and the one after it are
        # 12 bytes, and a run of backslashes is judged from its start.
        safe = len(text) if not piece else max(0, len(text) - 12)
        while safe > 0 and text[safe - 1 : safe] == b"\\":
            safe -= 1
        lone, safe = _lone_surrogate(text, safe)
        if lone is not None:
            at = self._read + lone
            raise ImportRefused(
                [
                    f"The file holds half of a surrogate pair (a \\ud800 to \\udfff escape "
                    f"alone) at byte {at:,}: text with it cannot be saved."
                ]
            )
        self._read += safe
        self._carry = text[safe:]


_SURROGATE = re.compile(rb"(\\+)u[dD]([0-9a-fA-F])[0-9a-fA-F]{2}")


def _lone_surrogate(text: bytes, end: int) -> tuple[int | None, int]:
    """Where a surrogate escape without its other half starts in ``text`` (judging those
    that start before ``end``), and where judging stopped: ``end``, or past a pair that
    straddles it."""
    pending: int | None = None  # a high half's end, where its low half must start
    for match in _SURROGATE.finditer(text):
        if len(match.group(1)) % 2 == 0:  # an escaped backslash, then plain "u…"
            continue
        start = match.end(1) - 1
        high = match.group(2) in b"89abAB"
        if pending is not None:
            if high or start != pending:
                return pending - 6, end
            pending = None
            if match.end() > end:
                return None, match.end()
            continue
        if start >= end:
            break
        if not high:
            return start, end
        pending = match.end()
    return (None if pending is None else pending - 6), end


_ENDS_TOO_SOON = "The file is not valid JSON: it ends too soon."
_TOO_DEEP = "The file is not an export: its values nest deeper than an export's."


class Events:
    """The file's JSON events (ijson's basic_parse: no path strings, which grow with depth),
    refused past ``_MAX_DEPTH``."""

    def __init__(self, file: Readable) -> None:
        self._events = ijson.basic_parse(_Checked(file), use_float=True, buf_size=_CHUNK)
        self.depth = 0

    def next(self) -> tuple[str, Any]:
        try:
            event, value = next(self._events)
        except StopIteration:
            raise ImportRefused([_ENDS_TOO_SOON]) from None
        except ijson.JSONError as exc:
            raise ImportRefused([_json_problem(exc)]) from None
        if event in ("start_map", "start_array"):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise ImportRefused([_TOO_DEEP])
        elif event in ("end_map", "end_array"):
            self.depth -= 1
        return event, value

    def value(self, first: tuple[str, Any]) -> Any:
        """The whole value that starts with the event ``first``."""
        event, value = first
        if event == "start_map":
            return self._object()
        return self._list() if event == "start_array" else value

    def _object(self) -> dict[str, Any]:
        """An object, after its opening brace: the path every message takes, so its flat
        fields are read in a tight loop (a nested value takes the general one)."""
        found: dict[str, Any] = {}
        key = ""
        events = self._events
        try:
            while True:
                event, value = next(events)
                if event == "map_key":
                    key = value
                elif event == "end_map":
                    self.depth -= 1
                    return found
                elif event in ("start_map", "start_array"):
                    self.depth += 1
                    if self.depth > _MAX_DEPTH:
                        raise ImportRefused([_TOO_DEEP])
                    found[key] = self._object() if event == "start_map" else self._list()
                else:
                    found[key] = value
        except StopIteration:
            raise ImportRefused([_ENDS_TOO_SOON]) from None
        except ijson.JSONError as exc:
            raise ImportRefused([_json_problem(exc)]) from None

    def _list(self) -> list[Any]:
        builder = ijson.ObjectBuilder()
        builder.event("start_array", None)
        depth = self.depth - 1
        while self.depth > depth:
            builder.event(*self.next())
        return builder.value  # type: ignore[no-any-return]

    def skip(self, first: tuple[str, Any]) -> None:
        """Read past the value that starts with ``first``, keeping none of it."""
        if first[0] in ("start_map", "start_array"):
            depth = self.depth - 1
            while self.depth > depth:
                self.next()

    def end(self) -> None:
        """Nothing may follow the file's object but white space."""
        try:
            for _ in self._events:
                raise ImportRefused(["The file is not valid JSON: more follows its end."])
        except ijson.JSONError as exc:
            raise ImportRefused([_json_problem(exc)]) from None


def _json_problem(exc: Exception) -> str:
    # yajl's message: what is wrong, then the text around it with a caret under the place.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    what = lines[0].rstrip(".") if lines else "it cannot be read"
    near = f", near “{lines[1][:40]}”" if len(lines) > 2 else ""
    return f"The file is not valid JSON: {what}{near}."


def event_kind(event: tuple[str, Any]) -> str:
    names = {"start_map": "an object", "start_array": "a list"}
    return names.get(event[0]) or kind(event[1])
