"""Incremental decoder for the ``text/event-stream`` format (Server-Sent Events).

Follows "Interpreting an event stream" in the WHATWG HTML standard:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

Pure parsing and no I/O: the network code feeds it bytes as they arrive, split anywhere, and gets
back the events those bytes completed.
"""

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


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
        self._partial = bytearray()
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
        if self._skip_lf and data.startswith(b"\n"):
            data = data[1:]
        # A CR is a line end on its own, so its line is handled now; an LF opening the next chunk
        # is then the second half of a CRLF, not a blank line.
        self._skip_lf = data.endswith(b"\r")

        events = []
        # bytes.splitlines breaks only on LF, CR and CRLF, exactly the spec's line ends, and CR/LF
        # never occur inside a UTF-8 sequence, so splitting before decoding is safe.
        for piece in data.splitlines(keepends=True):
            line = piece.rstrip(b"\r\n")
            if len(line) == len(piece):  # no line end yet: only the chunk's last piece
                self._partial += piece
                break
            if self._partial:
                self._partial += line
                line = bytes(self._partial)
                self._partial.clear()
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[Event]:
        """End the stream, discarding any incomplete event, and get ready for a new stream."""
        # Events are dispatched only by a blank line, which feed() handles on arrival, so nothing
        # is ever still due here; the list keeps feed() and close() interchangeable for callers.
        self._start_stream()
        return []

    def _process_line(self, line: bytes) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        field, _, value = line.decode("utf-8", "replace").partition(":")
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
        return None

    def _dispatch(self) -> Event | None:
        self._last_event_id = self._id_buffer
        data, event_type, retry = self._data, self._event_type, self._retry
        self._data, self._event_type, self._retry = [], "", None
        if not data:
            return None
        # Joining with LF is the spec's "append value and LF, then drop the final LF".
        return Event(event_type or "message", "\n".join(data), self._id_buffer, retry)
