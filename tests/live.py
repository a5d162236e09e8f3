"""A real WebSocket client for tests against real daphne processes."""

import asyncio
import json
import ssl
from types import TracebackType
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from tests.assembler import Assembler

# As chat.js: after this long without a frame, streaming answers are asked about with a
# sync, and the conversation with a ping (a pong that disagrees asks for a resync).
QUIET_SECONDS = 5.0


class Endpoint(Protocol):
    """Where a tab connects: a daphne process (tests/servers.py) or nginx in front of several."""

    url: str
    ws_url: str
    ssl_context: ssl.SSLContext | None


class LiveClient:
    """One browser tab, as far as the server can tell: session cookie, origin, frames."""

    def __init__(self, server: Endpoint, conversation_id: Any, cookie: str) -> None:
        self.server = server
        self.url = f"{server.ws_url}/ws/conversations/{conversation_id}/"
        self.cookie = cookie
        self.assembler = Assembler()
        self.frames: list[dict[str, Any]] = []
        self._socket: ClientConnection | None = None

    async def __aenter__(self) -> "LiveClient":
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
        """The next frame, fed to the assembler (whose sync or resync requests are sent)."""
        assert self._socket is not None
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self._socket.recv(), timeout))
        self.frames.append(frame)
        request = self.assembler.feed(frame)
        if request is not None:
            await self.send(request)
        return frame

    async def receive_until(self, frame_type: str, timeout: float = 15) -> dict[str, Any]:
        """Frames up to the next of ``frame_type``; a quiet spell is checked on, as in chat.js."""
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
        """The code the server closed the socket with, once it is closed."""
        assert self._socket is not None
        return self._socket.close_code


async def refused_connection(
    server: Endpoint, conversation_id: Any, cookie: str, timeout: float = 15
) -> tuple[dict[str, Any], int | None]:
    """Open a socket the server must refuse after accepting: its one frame, and the close code."""
    async with connect(
        f"{server.ws_url}/ws/conversations/{conversation_id}/",
        origin=Origin(server.url),
        additional_headers={"Cookie": f"sessionid={cookie}"},
        proxy=None,
        ssl=server.ssl_context,
    ) as socket:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        try:
            extra = await asyncio.wait_for(socket.recv(), timeout)
        except ConnectionClosed:
            return frame, socket.close_code
        raise AssertionError(f"the socket stayed open after {frame}, and sent {extra!r}")
