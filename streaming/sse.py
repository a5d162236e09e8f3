"""Incremental decoder for the ``text/event-stream`` format (Server-Sent Events).

Follows "Interpreting an event stream" in the WHATWG HTML standard:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

Pure parsing and no I/O: the network code feeds it bytes as they arrive, split anywhere, and gets
back the events those bytes completed.
"""

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
# An int, not b"\n": ``int in bytes`` is one memchr, while ``bytes in bytes`` first tries the
# needle as an int and builds and drops a TypeError, which costs more than the search.
_LF = ord("\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched server-sent event."""

    event: str = "message"
    """The event type; ``message`` when the block set none."""
    data: str = ""
    """The block's ``data`` values joined with LF."""
    id: str = ""
    """The last event ID at dispatch time; kept across events until the server sends another."""
    retry: int | None = None
    """Reconnection time in ms if this event's block had a valid ``retry`` field, else None."""


class SSEDecoder:
    """Turns chunks of an event stream into `Event`s, whatever the chunk boundaries."""

    def __init__(self) -> None:
        self._last_event_id = ""
        self._start_stream()

    def _start_stream(self) -> None:
        # The spec gives each stream fresh buffers, the last-event-ID buffer included; only the
        # source's last event ID (kept for reconnecting) outlives a stream.
        self._at_start = True
        self._head = b""
        self._partial: list[bytes] = []  # reads since the last line end, none of them has one
        self._skip_lf = False
        self._data: list[str] = []
        self._event_type = ""
        self._id_buffer = ""
        self._retry: int | None = None

    @property
    def last_event_id(self) -> str:
        """The ID to send as ``Last-Event-ID`` when reconnecting; it survives `close()`."""
        return self._last_event_id

    def feed(self, data: bytes) -> list[Event]:
        """Decode the next chunk of the stream and return the events it completed."""
        if self._at_start:
            data = self._head + data
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._head = data  # may still become a BOM: wait for more bytes
                return []
            self._at_start, self._head = False, b""
            data = data.removeprefix(_BOM)
        if not data:
            return []
        if self._skip_lf:
            # A CR is a line end on its own, so its line was handled on arrival; an LF opening
            # this chunk is then the second half of a CRLF, not a blank line.
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
                if not data:
                    return []

        # Only the new bytes are searched, so a long line fed in small chunks stays linear.
        cr = data.rfind(b"\r")
        end = max(data.rfind(b"\n"), cr)
        if end < 0:
            self._partial.append(data)
            return []
        self._skip_lf = cr == len(data) - 1
        lines = data[: end + 1]
        if self._partial:
            lines = b"".join([*self._partial, lines])
            self._partial.clear()
        if end + 1 < len(data):
            self._partial.append(data[end + 1 :])
        if cr >= 0:  # every line end becomes one LF; a CRLF split across chunks is one already
            lines = lines.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return self._process(lines)

    def close(self) -> list[Event]:
        """End the stream, discarding any incomplete event, and get ready for a new stream."""
        # Events are dispatched only by a blank line, which feed() handles on arrival, so nothing
        # is ever still due here; the list keeps feed() and close() interchangeable for callers.
        self._start_stream()
        return []

    def _process(self, lines: bytes) -> list[Event]:
        """The events of whole lines, each ended by one LF."""
        # Nearly every block is one ``data: `` line. Splitting at "blank line, then data: "
        # leaves each such block as its bare value; a piece with no LF in it is one, whole.
        # Other pieces are rare and go line by line.
        events: list[Event] = []
        head, *values = lines.split(b"\n\ndata: ")
        if head.startswith(b"data: ") and not (
            self._data or self._event_type or self._retry is not None
        ):
            values.insert(0, head[6:])  # starts a block, just like the pieces after it
        elif values:
            self._process_lines(head, events)
            self._dispatch(events)  # the blank line before the first "data: "
        else:
            self._process_lines(head[:-1], events)
            return events

        last = values.pop()  # whole lines, but no blank line and "data: " after them yet
        event_id = self._id_buffer
        for value in values:
            if _LF not in value:
                events.append(_message(value, event_id))
            else:
                self._process_lines(b"data: " + value, events)  # the split took its "data: "
                self._dispatch(events)
                event_id = self._id_buffer
        if values:  # each of them ended with a blank line
            self._last_event_id = event_id
        if last.find(b"\n") == len(last) - 2:  # one line, then a blank line
            events.append(_message(last[:-2], event_id))
            self._last_event_id = event_id
        else:
            self._process_lines(b"data: " + last[:-1], events)
        return events

    def _process_lines(self, lines: bytes, events: list[Event]) -> None:
        """Interpret LF-separated lines, appending the events blank lines dispatch."""
        # Decoding several lines at once equals decoding them one by one: LF is never part of a
        # UTF-8 sequence, so no character (or replaced invalid sequence) spans a line end.
        for line in lines.decode("utf-8", "replace").split("\n"):
            if not line:
                self._dispatch(events)
                continue
            field, _, value = line.partition(":")
            if not field:
                continue  # a comment
            value = value.removeprefix(" ")
            match field:
                case "data":
                    self._data.append(value)
                case "event":
                    self._event_type = value
                case "id" if "\0" not in value:
                    self._id_buffer = value
                case "retry" if value.isascii() and value.isdigit():
                    self._retry = int(value)

    def _dispatch(self, events: list[Event]) -> None:
        self._last_event_id = self._id_buffer
        data, event_type, retry = self._data, self._event_type, self._retry
        self._data, self._event_type, self._retry = [], "", None
        if data:
            # Joining with LF is the spec's "append value and LF, then drop the final LF".
            events.append(Event(event_type or "message", "\n".join(data), self._id_buffer, retry))


# Event's frozen __init__ sets each field with object.__setattr__, which made it the single
# largest cost of decoding; writing its slots directly builds the same Event in half the time.
_new_event = object.__new__
_set_event, _set_data, _set_id, _set_retry = (
    vars(Event)[field].__set__ for field in ("event", "data", "id", "retry")
)


def _message(data: bytes, event_id: str) -> Event:
    """``Event("message", data decoded, event_id)``, for a block of one ``data`` line."""
    event = _new_event(Event)
    _set_event(event, "message")
    _set_data(event, data.decode("utf-8", "replace"))
    _set_id(event, event_id)
    _set_retry(event, None)
    return event
