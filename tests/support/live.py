"""A real WebSocket client for tests against real daphne processes."""

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from tests.support.assembler import Assembler, Joiner
from tests.support.waiting import until

# As the chat page: after this long without a frame, streaming answers are asked about with a
# sync, and the conversation with a ping (a pong that disagrees asks for a resync).
QUIET_SECONDS = 5.0


class Endpoint(Protocol):
    """Where a tab connects: a daphne process (tests/support/servers.py), or nginx in front
    of several."""

    url: str
    ws_url: str
    ssl_context: ssl.SSLContext | None


#: How much of a server's log a refused handshake's error carries.
LOG_CHARS = 12000


@contextlib.contextmanager
def handshake_explained(server: Endpoint) -> Iterator[None]:
    """A handshake answered with an HTTP error (daphne's 500 for an application that raised
    before accepting) fails with the server's log attached from the last traceback of an
    application that raised: the failing run, not a rerun, is what says why."""
    try:
        yield
    except InvalidStatus as exc:
        log = getattr(server, "log", None)
        if callable(log):
            text = log()
            start = text.rfind("Exception inside application")
            if start < 0:
                start = max(len(text) - LOG_CHARS, 0)
            exc.add_note(f"The server's log, from {start}:\n{text[start : start + LOG_CHARS]}")
        raise


class LiveClient:
    """One browser tab, as far as the server can tell: session cookie, origin, frames."""

    def __init__(self, server: Endpoint, conversation_id: Any, cookie: str) -> None:
        self.server = server
        self.url = f"{server.ws_url}/ws/conversations/{conversation_id}/"
        self.cookie = cookie
        self.assembler = Assembler()
        #: Joins frames that came in parts; its `longest` is the longest socket message.
        self.joiner = Joiner()
        self.frames: list[dict[str, Any]] = []
        self._socket: ClientConnection | None = None
        #: ``receive`` met the close: every frame sent before it is in ``frames``.
        self._read_to_close = False

    async def __aenter__(self) -> "LiveClient":
        with handshake_explained(self.server):
            self._socket = await connect(
                self.url,
                origin=Origin(self.server.url),
                additional_headers={"Cookie": f"sessionid={self.cookie}"},
                proxy=None,
                open_timeout=10,
                ssl=self.server.ssl_context,
            )
        snapshot = await self.receive()
        assert snapshot["type"] == "snapshot", snapshot
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._socket is not None:
            await self._socket.close()

    @property
    def response_headers(self) -> Any:
        """The headers of the server's answer to the handshake."""
        assert self._socket is not None
        assert self._socket.response is not None
        return self._socket.response.headers

    @property
    def snapshot(self) -> dict[str, Any]:
        return self.frames[0]

    async def send(self, frame: dict[str, Any]) -> None:
        assert self._socket is not None
        await self._socket.send(json.dumps(frame))

    async def receive(self, timeout: float = 15) -> dict[str, Any]:
        """The next frame (joined, if it came in parts), fed to the assembler (whose sync or
        resync requests are sent)."""
        assert self._socket is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        frame = None
        while frame is None:
            try:
                text = await asyncio.wait_for(self._socket.recv(), deadline - loop.time())
            except ConnectionClosed:
                self._read_to_close = True
                raise
            frame = self.joiner.join(str(text))
        self.frames.append(frame)
        request = self.assembler.feed(frame)
        if request is not None:
            await self.send(request)
        return frame

    async def receive_until(self, frame_type: str, timeout: float = 15) -> dict[str, Any]:
        """Frames up to the next of ``frame_type``; a quiet spell is checked on, as by the page."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                frame = await self.receive(min(left, QUIET_SECONDS))
            except TimeoutError:
                await self.check_quiet()
                continue
            if frame["type"] == frame_type:
                return frame
        raise TimeoutError(f"no {frame_type!r} frame within {timeout} s")

    async def check_quiet(self) -> None:
        """What the page does after a quiet spell: ask about streaming answers, and ping.

        A resync whose snapshot has not come is asked again, as the page's watchdog does.
        """
        for request in self.assembler.quiet():
            await self.send(request)
        if self.assembler.resyncing:
            await self.send({"type": "resync"})
        await self.ping()

    async def ping(self) -> None:
        """Ask how the stored conversation stands; the `pong` goes through the assembler."""
        await self.send({"type": "ping"})

    async def resync(self) -> None:
        """Ask for a fresh snapshot."""
        self.assembler.resyncing = True
        await self.send({"type": "resync"})

    def text_of(self, message_id: str) -> str:
        """The answer's text as this client assembled it (before any `done` replaced it)."""
        return self.assembler.text.get(message_id, "")

    def shown_text(self, message_id: str) -> str:
        """The message's text as a page shows it: once it ended, the saved text."""
        return self.assembler.shown(message_id)

    @property
    def close_code(self) -> int | None:
        """The code the server closed the socket with, once this client has read up to the
        close (``receive`` raised ConnectionClosed); None until then.

        The connection knows its code as soon as the closing handshake is over, when the
        frames the server sent just before may still wait unread in its buffer: a test that
        stopped reading on the connection's word would miss them (a `deleted` frame, seen
        as never sent).
        """
        assert self._socket is not None
        return self._socket.close_code if self._read_to_close else None


async def refused_connection(
    server: Endpoint, conversation_id: Any, cookie: str, timeout: float = 15
) -> tuple[dict[str, Any], int | None]:
    """Open a socket the server must refuse after accepting: its one frame, and the close code."""
    with handshake_explained(server):
        opened = await connect(
            f"{server.ws_url}/ws/conversations/{conversation_id}/",
            origin=Origin(server.url),
            additional_headers={"Cookie": f"sessionid={cookie}"},
            proxy=None,
            ssl=server.ssl_context,
        )
    async with opened as socket:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        try:
            extra = await asyncio.wait_for(socket.recv(), timeout)
        except ConnectionClosed:
            return frame, socket.close_code
        raise AssertionError(f"the socket stayed open after {frame}, and sent {extra!r}")


async def keep_reading(client: LiveClient, stop: asyncio.Event) -> None:
    """Read frames as an open page does until told to stop, checking on quiet spells."""
    while not stop.is_set():
        try:
            await client.receive(QUIET_SECONDS)
        except TimeoutError:
            await client.check_quiet()
        except ConnectionClosed:
            return


@contextlib.asynccontextmanager
async def reading(*clients: LiveClient) -> AsyncIterator[None]:
    """Keep ``clients`` reading in the background while the block runs."""
    stop = asyncio.Event()
    readers = [asyncio.create_task(keep_reading(client, stop)) for client in clients]
    try:
        yield
    finally:
        stop.set()
        # Python 3.11's wait_for (in LiveClient.receive) drops a cancellation that lands as
        # a frame arrives; the stop flag ends the loop then, and this asks again meanwhile.
        while pending := [reader for reader in readers if not reader.done()]:
            for reader in pending:
                reader.cancel()
            await asyncio.wait(pending, timeout=1)
    for reader in readers:
        if not reader.cancelled() and (error := reader.exception()) is not None:
            raise error


def frames_of(client: LiveClient, kind: str, message_id: str | None = None) -> list[dict[str, Any]]:
    """The frames of type ``kind`` the socket received (about ``message_id``, if given)."""
    return [
        f
        for f in client.frames
        if f["type"] == kind and (message_id is None or f.get("message_id") == message_id)
    ]


async def frame(
    client: LiveClient, kind: str, *, other_than: Iterable[str] = (), timeout: float = 20.0
) -> dict[str, Any]:
    """The first frame of type ``kind`` about a message not in ``other_than``, once received."""
    skip = set(other_than)

    def found() -> dict[str, Any] | None:
        return next((f for f in frames_of(client, kind) if f.get("message_id") not in skip), None)

    await until(
        lambda: found() is not None, what=f"a {kind!r} frame on {client.url}", timeout=timeout
    )
    result = found()
    assert result is not None
    return result
