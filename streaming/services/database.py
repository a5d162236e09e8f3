"""Database work for async callers: a bounded pool of threads, and ``to_async``."""

import functools
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings

from streaming.services import events

P = ParamSpec("P")
R = TypeVar("R")


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


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


def to_async(function: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``function`` for async callers: it runs on ``db_executor`` and returns its connection,
    and the events it committed are sent, in order, before the caller goes on (``events``).

    Not thread-sensitive: these functions keep no state in their thread, so many sockets'
    queries run side by side instead of queueing behind the one thread Django would use.
    """
    run = database_sync_to_async(function, thread_sensitive=False, executor=db_executor())

    @functools.wraps(function)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with events.tracked() as tracking:
            try:
                return await run(*args, **kwargs)  # type: ignore[no-any-return]
            finally:
                # Even when it failed: what it committed before failing is saved.
                await tracking.sent()

    return call
