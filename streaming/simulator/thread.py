"""Run a Simulator from synchronous code: its own event loop in a daemon thread."""

import asyncio
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from .server import Simulator

START_TIMEOUT = 10.0


class SimulatorThread:
    """A Simulator on its own event loop in a daemon thread; a context manager.

    For synchronous tests, and for code whose event loop must not be shared with the
    server (a Django test server, another process's fixtures).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float = 50.0,
        tokens: int = 60,
        api_key: str | None = None,
        model: str = "simulated",
        models: Sequence[str] | None = None,
    ) -> None:
        self.simulator = Simulator(
            host=host,
            port=port,
            rate=rate,
            tokens=tokens,
            api_key=api_key,
            model=model,
            models=models,
        )
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of the running simulator."""
        return self.simulator.base_url

    @property
    def port(self) -> int:
        """The port served on."""
        return self.simulator.port

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Chat completion requests received, oldest first."""
        return self.simulator.requests

    def clear_requests(self) -> None:
        """Forget recorded requests and the `sim:times` counts."""
        self.simulator.clear_requests()

    def start(self) -> None:
        """Start the thread and return once the server listens (or raise why it could not)."""
        self._thread = threading.Thread(target=self._run, name="chatsite-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the simulator thread did not start in time")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Close the server and wait for its thread to end."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        try:
            await self.simulator.start()
        except BaseException as exc:
            # Bind errors belong to the thread that called start(), not to this one.
            self._error = exc
            self._ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.simulator.close()
