"""Limits on sockets: how many one user may hold open, and how fast one may send frames.

A user's open sockets are counted where every process sees them: in Redis when one is
configured (the channel layer's first server, by ``REDIS_URL`` or ``REDIS_SENTINELS``; a
sorted set per user, one member per socket, scored by when it expires unless the socket
renews it), else in this process's memory, which is then the only process. Each socket
renews its place itself, every third of ``SLOT_SECONDS``, for as long as it is open, so the
places of a process that died free themselves within ``SLOT_SECONDS``.

The answers a user may start are limited in the database instead (``services.quotas``).
"""

import asyncio
import logging
import time
import weakref
from typing import Any

from channels_redis.utils import create_pool
from django.conf import settings
from redis.asyncio import Redis

from streaming.exceptions import RateLimited

logger = logging.getLogger(__name__)

# A socket's place lasts this long unless renewed; its socket renews it every third of it.
SLOT_SECONDS = 60
# Redis must answer within this, or the socket is refused as when Redis is down.
_REDIS_TIMEOUT_SECONDS = 5
# A process's calls for places at once, at most: each holds a connection while it waits for
# Redis, and 200 sockets closing together would want 200, past redis-py's pool ceiling of
# 100 (MaxConnectionsError, and places left until they expire). The rest wait their turn.
_CALLS_AT_ONCE = 50
#: Followed by the user id: the sorted set of that user's open sockets.
KEY_PREFIX = "chatsite:sockets:"

# Atomic "count the live places, and take one if there is room": two sockets of one user
# opening on two processes at once can never both take the last place.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[3])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

#: A Redis client for the counts, and the turn its calls wait for.
Client = tuple[Redis, asyncio.Semaphore]
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client]" = (
    weakref.WeakKeyDictionary()
)
# user id -> {socket's channel name: when its place expires}, when there is no Redis.
_local: dict[int, dict[str, float]] = {}


def _redis() -> Client | None:
    """This event loop's Redis client for the counts, and the turn its calls wait for
    (_CALLS_AT_ONCE); None without a configured Redis."""
    if not settings.REDIS_HOSTS:
        return None
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        redis = redis_client(
            settings.REDIS_HOSTS[0],
            socket_timeout=_REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        )
        client = _clients[loop] = (redis, asyncio.Semaphore(_CALLS_AT_ONCE))
    return client


def redis_client(host: dict[str, Any], **options: Any) -> Redis:
    """A client for one of the channel layer's Redis servers (``settings.REDIS_HOSTS``: a
    URL, or a Sentinel master with its sentinels)."""
    return Redis(connection_pool=create_pool({**host, **options}))


class SocketSlot:
    """One socket's place among its user's open sockets."""

    def __init__(self, user_id: int, channel_name: str) -> None:
        self.user_id = user_id
        self.channel_name = channel_name
        self._renewer: asyncio.Task[None] | None = None

    async def take(self) -> None:
        """Take a place, or raise RateLimited when the user has all theirs open."""
        limit = settings.LIMIT_SOCKETS_PER_USER
        if not await self._take(limit):
            raise RateLimited(
                f"Open chat tabs are limited to {limit} at once. Close one, then reload this page.",
                retry_after=SLOT_SECONDS,
            )

    def keep(self) -> None:
        """Renew the place for as long as the socket is open (until ``release``)."""
        self._renewer = asyncio.create_task(self._renew())

    async def release(self) -> None:
        """Give the place up (the socket closed); never raises."""
        if self._renewer is not None:
            self._renewer.cancel()
        try:
            client = _redis()
            if client is None:
                _local.get(self.user_id, {}).pop(self.channel_name, None)
            else:
                redis, turn = client
                async with turn:
                    await redis.zrem(self._key, self.channel_name)
        except Exception as exc:  # Redis is down: the place expires on its own
            logger.warning("Could not free a socket's place of user %s: %r", self.user_id, exc)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(SLOT_SECONDS / 3)
            try:
                # Whatever the count: a socket that is open keeps its place, even one it lost
                # while Redis was away.
                await self._take(None)
            except Exception as exc:
                logger.warning("Could not renew a socket's place of user %s: %r", self.user_id, exc)

    @property
    def _key(self) -> str:
        return f"{KEY_PREFIX}{self.user_id}"

    async def _take(self, limit: int | None) -> bool:
        """Take or renew the place; with ``limit`` None, renew whatever the count."""
        client = _redis()
        if client is None:
            now = time.time()
            expires = now + SLOT_SECONDS
            places = _local.setdefault(self.user_id, {})
            for channel, until in list(places.items()):
                if until <= now:
                    del places[channel]
            if self.channel_name not in places and limit is not None and len(places) >= limit:
                return False
            places[self.channel_name] = expires
            return True
        ceiling = limit if limit is not None else 2**31
        redis, turn = client
        async with turn:
            # The time once its turn came: a place taken after a wait expires from then.
            now = time.time()
            expires = now + SLOT_SECONDS
            taken = await redis.eval(
                _TAKE, 1, self._key, now, expires, self.channel_name, ceiling, SLOT_SECONDS * 2
            )
        return bool(taken)


class FrameBudget:
    """A token bucket: a socket may send ``LIMIT_FRAMES_PER_SECOND`` frames a second on
    average and ``LIMIT_FRAMES_BURST`` at once. Per socket, so it lives in the consumer."""

    def __init__(self) -> None:
        self._tokens = float(settings.LIMIT_FRAMES_BURST)
        self._at = time.monotonic()

    def spend(self) -> None:
        """Count one frame, or raise RateLimited if the socket is sending too fast."""
        rate, burst = settings.LIMIT_FRAMES_PER_SECOND, settings.LIMIT_FRAMES_BURST
        now = time.monotonic()
        self._tokens = min(burst, self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens < 1:
            raise RateLimited(
                "This page is sending too fast; slow down.", retry_after=(1 - self._tokens) / rate
            )
        self._tokens -= 1
