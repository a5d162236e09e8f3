"""Waiting for a condition, never for a guessed time: the suite's two polls."""

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def until(
    condition: Callable[[], Any], *, timeout: float = 10.0, what: str = "the condition"
) -> None:
    """Poll ``condition()`` (awaiting what it returns, if awaitable) until it is true.

    Fails saying ``what`` did not happen by the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)


def poll_until(
    condition: Callable[[], bool], what: str, timeout: float = 20.0, interval: float = 0.02
) -> None:
    """``until`` for synchronous code: poll ``condition`` until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
