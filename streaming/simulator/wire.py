"""HTTP/1.1 framing: just enough of RFC 9112 for OpenAI clients, over asyncio streams.

Request bodies need a Content-Length; responses are JSON with a Content-Length, or an event
stream with chunked transfer coding, flushed event by event so a client sees real timing.
Connections stay open between requests (the HTTP/1.1 default) because httpx pools them.
"""

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NoReturn

# Room for OpenAI's most, 50 MB of images a request, as base64 (a third more), and text.
MAX_BODY = 72 * 1024 * 1024
MAX_HEADERS = 100
SERVER = "chatsite-simulator"


class HTTPError(Exception):
    """A request that cannot be read; the reply says why and the connection then closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectionGone(Exception):
    """The connection is closed (the client left, or a fault dropped it): nobody to answer."""


@dataclass(frozen=True)
class Request:
    """One HTTP request, read in full."""

    method: str
    """The method, as sent (methods are case-sensitive)."""
    path: str
    """The target without its query string."""
    version: str
    """"HTTP/1.1" or "HTTP/1.0"."""
    headers: dict[str, str]
    """Header values by lower-cased name; repeated headers joined with ", "."""
    body: bytes
    """The body, exactly Content-Length bytes."""

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection carry another request after this one."""
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        # HTTP/1.0 keep-alive is a legacy extension; closing after each request is always allowed.
        return self.version == "HTTP/1.1" and "close" not in tokens


def json_bytes(payload: Any) -> bytes:
    """Compact JSON, UTF-8 and not \\u-escaped, as OpenAI sends it."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request | None:
    """Read one request; None when the client closed the connection cleanly between requests.

    Raises HTTPError for a request we will not serve, ConnectionGone if it is cut off midway.
    `writer` is needed only for the interim "100 Continue" that curl waits for.
    """
    line = await _read_line(reader)
    if line in (b"\r\n", b"\n"):
        # RFC 9112 2.2: tolerate an empty line before the request line.
        line = await _read_line(reader)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise HTTPError(400, "Malformed request line.")
    method, target, version = parts

    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await _read_line(reader)
        if not line:
            raise ConnectionGone("connection closed inside the request headers")
        if line in (b"\r\n", b"\n"):
            break
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise HTTPError(400, "Malformed header line.")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    else:
        raise HTTPError(431, f"More than {MAX_HEADERS} request headers.")

    if "transfer-encoding" in headers:
        raise HTTPError(411, "Chunked request bodies are not supported; send Content-Length.")
    length_text = headers.get("content-length", "0")
    if not (length_text.isascii() and length_text.isdigit()):
        raise HTTPError(400, "Invalid Content-Length.")
    length = int(length_text)
    if length > MAX_BODY:
        raise HTTPError(413, f"Request body larger than {MAX_BODY} bytes.")
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await drain(writer)
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionGone("connection closed inside the request body") from exc
    except ConnectionError as exc:
        raise ConnectionGone(str(exc)) from exc
    return Request(method, target.partition("?")[0], version, headers, body)


def response_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    """The status line and headers of a response, ending with the empty line."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Server: {SERVER}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send_body(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    keep_alive: bool,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    """Send a complete response whose length is known."""
    head = response_head(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "keep-alive" if keep_alive else "close"),
            *(headers or []),
        ],
    )
    await write(writer, head + body)


class EventStream:
    """A text/event-stream response: one SSE event per HTTP chunk, each flushed on its own."""

    def __init__(self, writer: asyncio.StreamWriter, *, chunked: bool) -> None:
        # HTTP/1.0 has no chunked coding: the body then ends when the connection closes.
        self._writer = writer
        self._chunked = chunked

    async def start(self, *, keep_alive: bool) -> None:
        """Send the response head (status 200) before any event, as real servers do."""
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Connection", "keep-alive" if keep_alive else "close"),
        ]
        if self._chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        await write(self._writer, response_head(200, headers))

    async def data(self, payload: Any) -> None:
        """Send `data: <json>` as one event."""
        await self.send(b"data: " + json_bytes(payload) + b"\n\n")

    async def comment(self, text: str) -> None:
        """Send an SSE comment line, which clients must ignore."""
        await self.send(f": {text}\n\n".encode())

    async def send(self, raw: bytes) -> None:
        """Send raw event-stream bytes as one chunk."""
        if self._chunked:
            raw = b"%x\r\n%b\r\n" % (len(raw), raw)
        await write(self._writer, raw)

    async def finish(self) -> None:
        """End the body cleanly (the zero-length chunk)."""
        if self._chunked:
            await write(self._writer, b"0\r\n\r\n")


class Exchange:
    """One request on a connection, and what its response has done so far."""

    def __init__(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.request = request
        self.reader = reader
        self.writer = writer
        self.keep_alive = request.keep_alive
        self.status: int | None = None
        self.summary = "-"

    async def send_json(
        self, status: int, payload: Any, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """Send a complete JSON response."""
        await self.send_raw(status, json_bytes(payload), headers)

    async def send_raw(
        self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """Send a complete response with an application/json body, valid or not."""
        self.status = status
        await send_body(self.writer, status, body, keep_alive=self.keep_alive, headers=headers)

    async def start_events(self) -> "EventStream":
        """Begin a 200 event-stream response (chunked, unless the client speaks HTTP/1.0)."""
        events = EventStream(self.writer, chunked=self.request.version == "HTTP/1.1")
        await events.start(keep_alive=self.keep_alive)
        self.status = 200
        return events

    def drop(self, reason: str) -> NoReturn:
        """Abort the connection abruptly, mid-response if need be, as a crashed server would."""
        self.writer.transport.abort()
        raise ConnectionGone(reason)

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, but raise ConnectionGone at once if the client hangs up meanwhile.

        Reading is the only way to notice a hang-up while nothing is being written, which is
        what lets a stalled stream end as soon as its client gives up.
        """
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                while await self.reader.read(65536):
                    # The client is pipelining; we do not, so close after this response.
                    self.keep_alive = False
        except TimeoutError:
            return
        except ConnectionError as exc:
            raise ConnectionGone(str(exc)) from exc
        raise ConnectionGone("client closed the connection")

    def log_line(self, outcome: str = "") -> str:
        """The request in one line for the log; no header is in it, Authorization least of all."""
        status = "-" if self.status is None else self.status
        line = f"{self.request.method} {self.request.path} {status} {self.summary} {outcome}"
        return line.rstrip()


async def write(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write and flush, or raise ConnectionGone if the peer is no longer there."""
    if writer.transport.is_closing():
        # Writing to a closed transport only logs warnings; say so plainly instead.
        raise ConnectionGone("connection already closed")
    writer.write(data)
    await drain(writer)


async def drain(writer: asyncio.StreamWriter) -> None:
    """Wait until the written bytes are handed to the OS (real back-pressure, real timing)."""
    try:
        await writer.drain()
    except ConnectionError as exc:
        raise ConnectionGone(str(exc)) from exc


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError as exc:
        # StreamReader's line limit (64 KiB) was exceeded.
        raise HTTPError(431, "Request line or header too long.") from exc
    except ConnectionError as exc:
        raise ConnectionGone(str(exc)) from exc
