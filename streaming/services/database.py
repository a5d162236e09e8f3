"""Database work for async callers: a bounded pool of threads, and ``to_async``."""

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings

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


def to_async(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``function`` for async callers: it runs on ``db_executor`` and returns its connection.

    Not thread-sensitive: these functions keep no state in their thread, so many sockets'
    queries run side by side instead of queueing behind the one thread Django would use.
    """
    return database_sync_to_async(  # type: ignore[no-any-return]
        function, thread_sensitive=False, executor=db_executor()
    )
