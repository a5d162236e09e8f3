"""The services the suite runs on, and what a test does when one it needs is missing.

PostgreSQL and Redis are used where they answer on their usual local ports, as CI uses
them, unless DATABASE_URL or REDIS_URL names others. Where none answers, the tests that need
one skip saying so; under CI they fail instead.
"""

import contextlib
import hashlib
import os
import socket
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

#: Where the suite looks for PostgreSQL and Redis when no variable names them.
LOCAL_POSTGRESQL = "postgres://postgres@127.0.0.1:5432/chatsite"
LOCAL_REDIS = "redis://127.0.0.1:6379"

#: Names the channel-layer prefix of the daphne processes a test process starts
#: (tests/live_settings.py reads it).
LAYER_PREFIX_VARIABLE = "TEST_LAYER_PREFIX"


def service_missing(what: str, why: str) -> None:
    """Fail in CI, skip elsewhere: a missing service must never pass silently in CI."""
    message = f"{what} is not available ({why})."
    if IN_CI:
        pytest.fail(message + " CI must provide it.", pytrace=False)
    pytest.skip(message)


def local_postgresql() -> str | None:
    """``LOCAL_POSTGRESQL`` if a PostgreSQL server lets its user in there, else None."""
    try:
        with psycopg.connect(LOCAL_POSTGRESQL.rsplit("/", 1)[0] + "/postgres", connect_timeout=3):
            return LOCAL_POSTGRESQL
    except psycopg.Error:
        return None


def checkout_name(root: Path) -> str:
    """A short name for the checkout at ``root``: two checkouts' test databases never meet."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]


def new_layer_prefix() -> str:
    """A channel-layer prefix for one test process's servers.

    Keys are kept apart by Redis databases, but Pub/Sub channels are the whole server's: a
    prefix of their own keeps the groups of two test processes (`user.<id>`, with ids that
    repeat across test databases) from hearing each other.
    """
    return f"test-servers-{uuid.uuid4().hex[:8]}"


#: In each Redis database a test process uses: who holds it, until it expires.
CLAIM_KEY = "chatsite-tests:claimed-by"
CLAIM_SECONDS = 120
# Renew or give up the claim only while it is still this process's.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDatabase:
    """A Redis database (a db number on one server) that this test process holds for itself.

    The per-user counts of open sockets live in keys named by user ids, which repeat across
    test databases: in a database of its own, no other test process (another xdist worker,
    or another checkout's suite) can change them. The database the URL names is tried
    first, then 1, 2, … 15; a claim left by a process that died expires in CLAIM_SECONDS.
    """

    def __init__(self, server_url: str) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.url, self.client = self._claim(server_url)
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="redis-claim", daemon=True)
        self._renewer.start()

    def _claim(self, server_url: str) -> tuple[str, redis.Redis]:
        """The URL of the first database free to claim, and a client of it, once claimed."""
        parts = urlsplit(server_url)
        named = parts.path.strip("/")
        first = [int(named)] if named.isdigit() else []
        for db in first + [n for n in range(1, 16) if n not in first]:
            url = urlunsplit(parts._replace(path=f"/{db}"))
            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            try:
                claimed = client.set(CLAIM_KEY, self.owner, nx=True, ex=CLAIM_SECONDS)
            except redis.ResponseError:  # no database of that number on this server
                client.close()
                break
            if claimed:
                return url, client
            client.close()
        raise LookupError(f"every database of Redis at {server_url} is held by a test run")

    def _renew(self) -> None:
        while not self._stop.wait(CLAIM_SECONDS / 6):
            with contextlib.suppress(redis.RedisError):  # the next turn tries again
                self.client.eval(_RENEW, 1, CLAIM_KEY, self.owner, CLAIM_SECONDS)

    def delete_keys(self, prefix: str) -> None:
        """Delete the keys whose names start with ``prefix``: ones this process wrote."""
        keys = list(self.client.scan_iter(f"{prefix}*"))
        if keys:
            self.client.delete(*keys)

    def release(self) -> None:
        """Let other test processes have the database."""
        self._stop.set()
        self._renewer.join()
        self.client.eval(_RELEASE, 1, CLAIM_KEY, self.owner)
        self.client.close()
