"""Database work for async callers: a bounded pool of threads, ``to_async``, and what this
process saw of the database being out of reach."""

import functools
import math
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError

from streaming.services import events

P = ParamSpec("P")
R = TypeVar("R")


_executor: ThreadPoolExecutor | None = None
_duties: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()

#: What a database out of reach raises (refused, cut, timed out, locked): trying again later
#: may succeed, unlike any other error.
UNREACHABLE = (OperationalError, InterfaceError)


class _Reach:
    """When (monotonic) a call of this process last found the database out of reach, and
    when one first reached it after that; None: not yet."""

    failed_at: float | None = None
    back_at: float | None = None


def reachable_for() -> float:
    """Seconds this process has reached the database since it last found it out of reach
    (0 while it is; infinite if it never was), as ``to_async``'s calls saw it."""
    if _Reach.failed_at is None:
        return math.inf
    if _Reach.back_at is None:
        return 0.0
    return time.monotonic() - _Reach.back_at


def _reached(ok: bool) -> None:
    if not ok:
        _Reach.failed_at, _Reach.back_at = time.monotonic(), None
    elif _Reach.failed_at is not None and _Reach.back_at is None:
        _Reach.back_at = time.monotonic()


def db_executor() -> ThreadPoolExecutor:
    """The process's bounded pool of threads for database work (DB_THREADS of them).

    Bounded, so a burst of sockets queues here instead of opening a connection each; long
    lived, so the connection pool (or SQLite's per-thread connection) is reused.
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(settings.DB_THREADS, thread_name_prefix="chatsite-db")
        return _executor


def duty_executor() -> ThreadPoolExecutor:
    """The thread of the runtime's checkpoints (their heartbeats) and its orphan sweep: never
    behind a burst of sockets' work in ``db_executor``; nothing long runs on it (the purge
    of deleted conversations, which may be large, does not). A heartbeat that waited there for
    STREAM_ORPHAN_SECONDS would let a sweep take a live answer for an orphan."""
    global _duties
    with _executor_lock:
        if _duties is None:
            _duties = ThreadPoolExecutor(1, thread_name_prefix="chatsite-duty")
        return _duties


def to_async(
    function: Callable[P, R], *, duty: bool = False
) -> Callable[P, Coroutine[Any, Any, R]]:
    """``function`` for async callers: it runs on ``db_executor`` (``duty``: on
    ``duty_executor``) and returns its connection, and the events it committed are sent,
    in order, before the caller goes on (``events``).

    Not thread-sensitive: these functions keep no state in their thread, so many sockets'
    queries run side by side instead of queueing behind the one thread Django would use.
    Whether the database answered is noted for ``reachable_for``.
    """
    executor = duty_executor() if duty else db_executor()
    run = database_sync_to_async(function, thread_sensitive=False, executor=executor)

    @functools.wraps(function)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with events.tracked() as tracking:
            try:
                result: R = await run(*args, **kwargs)
            except UNREACHABLE:
                _reached(False)
                raise
            else:
                _reached(True)
                return result
            finally:
                # Even when it failed: what it committed before failing is saved.
                await tracking.sent()

    return call
