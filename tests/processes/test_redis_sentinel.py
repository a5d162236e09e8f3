"""The channel layer through Redis Sentinel, and a failover under two daphne processes.

A real master, its replica and a sentinel watching them; the processes find the master
through the sentinel (`REDIS_SENTINELS`). When the master dies, the sentinel promotes the
replica, and the processes go on with it: answers stream to sockets on both processes again.
"""

import asyncio
import importlib
import uuid
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from websockets.exceptions import InvalidHandshake, InvalidMessage

import chatsite.settings
from chatsite.channel_layers import sentinel_hosts
from streaming.models import Conversation, Message
from streaming.simulator.directives import split_directives
from streaming.simulator.text import answer_tokens
from tests.support.frames import user_message
from tests.support.live import LiveClient
from tests.support.servers import DaphneServer, RedisServer
from tests.support.users import session_cookie
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

MASTER_NAME = "chatsite-test"


class SentinelSet:
    """A master, a replica of it, and one sentinel that may fail the master over."""

    def __init__(self, workdir: Path, sentinels: int = 1) -> None:
        self.master = RedisServer(workdir)
        self.master.start()
        self.replica = RedisServer(workdir, "--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        # Quorum 1: this one sentinel decides. A second without a ping from the master is
        # enough to call it down, so the test waits seconds for the failover, not minutes.
        self.sentinels = [
            RedisServer(
                workdir,
                sentinel_conf=(
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 1\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                    f"sentinel failover-timeout {MASTER_NAME} 5000\n"
                ),
            )
            for _ in range(sentinels)
        ]
        for sentinel in self.sentinels:
            sentinel.start()
        self.sentinel = self.sentinels[0]

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS for these sentinels."""
        return ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)

    def master_port(self) -> int:
        """The port of the master the sentinel names now."""
        address: Any = self.sentinel.client().sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(address[1])

    def knows_replica(self) -> bool:
        """Whether the sentinel has found the replica (it can fail over to it only then)."""
        replicas = self.sentinel.client().sentinel_slaves(MASTER_NAME)
        return any(int(r["port"]) == self.replica.port and r["is_slave"] for r in replicas)

    def replica_in_sync(self) -> bool:
        """Whether the replica has caught up with its master's link."""
        try:
            info = self.replica.client().info("replication")
        except redis.ConnectionError:
            return False
        return bool(info.get("master_link_status") == "up")

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.kill()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    servers = SentinelSet(tmp_path)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def two_sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    servers = SentinelSet(tmp_path, sentinels=2)
    try:
        yield servers
    finally:
        servers.stop()


def expected_answer(content: str, tokens: int) -> str:
    """The simulator's answer to ``content``, ``tokens`` tokens long."""
    prompt, _ = split_directives(content)
    return "".join(islice(answer_tokens(prompt), tokens))


async def connected(server: DaphneServer, conversation: Conversation, cookie: str) -> LiveClient:
    """A socket on ``server``, opened as the page does: again, until the layer takes it."""
    for attempt in range(40):
        try:
            return await LiveClient(server, conversation.id, cookie).__aenter__()
        # `unavailable` instead of a snapshot, refused, or closed before the handshake ended
        except (AssertionError, OSError, InvalidHandshake, InvalidMessage):
            await asyncio.sleep(0.25 * min(attempt + 1, 4))
    raise AssertionError(f"no socket on {server.url} after the failover")


async def answer_on_both(
    a: DaphneServer, b: DaphneServer, conversation: Conversation, cookie: str, content: str
) -> None:
    """Send ``content`` on a socket of ``a``; both sockets show the same exact answer."""
    on_a = await connected(a, conversation, cookie)
    on_b = await connected(b, conversation, cookie)
    async with on_a, on_b:
        await on_a.send(user_message(content))
        done_b = await on_b.receive_until("done", timeout=30)
        done_a = await on_a.receive_until("done", timeout=30)
    message_id = done_a["message_id"]
    saved = await Message.objects.aget(pk=message_id)
    assert done_a["status"] == done_b["status"] == saved.status == "complete"
    assert saved.content == expected_answer(content, 30)
    assert on_a.text_of(message_id) == on_b.text_of(message_id) == saved.content
    assert [f["type"] for f in on_b.frames].count("delta") >= 2  # live on b, not only at the end


async def test_layer_found_through_sentinel_survives_a_failover(
    live_servers: Callable[..., list[DaphneServer]],
    sentinels: SentinelSet,
    conversation: Conversation,
    user: User,
) -> None:
    await until(lambda: sentinels.knows_replica() and sentinels.replica_in_sync(), timeout=30)
    a, b = live_servers(
        2,
        REDIS_SENTINELS=sentinels.addresses,
        REDIS_SENTINEL_MASTERS=MASTER_NAME,
        LIMIT_SOCKETS_PER_USER="100",
    )
    cookie = await sync_to_async(session_cookie)(user)
    await answer_on_both(a, b, conversation, cookie, "before sim:tokens=30 sim:rate=100")
    # The sockets were counted on the master, so the layer and the counts both used it.
    assert await sync_to_async(sentinels.master.client().dbsize)() > 0

    sentinels.master.kill()
    await until(lambda: sentinels.master_port() == sentinels.replica.port, timeout=60)

    await answer_on_both(a, b, conversation, cookie, f"after {uuid.uuid4()} sim:tokens=30")
    assert a.process.poll() is None
    assert b.process.poll() is None


async def test_a_silent_sentinel_does_not_hold_up_finding_the_master(
    live_servers: Callable[..., list[DaphneServer]],
    two_sentinels: SentinelSet,
    conversation: Conversation,
    user: User,
) -> None:
    # The first sentinel listed is frozen: connections to it open, and nothing answers.
    two_sentinels.sentinel.pause()
    a, b = live_servers(
        2,
        REDIS_SENTINELS=two_sentinels.addresses,
        REDIS_SENTINEL_MASTERS=MASTER_NAME,
        LIMIT_SOCKETS_PER_USER="100",
    )
    cookie = await sync_to_async(session_cookie)(user)
    # Each process asks the second sentinel once the first has not answered in time.
    await answer_on_both(a, b, conversation, cookie, "around sim:tokens=30 sim:rate=100")
    assert await sync_to_async(two_sentinels.master.client().dbsize)() > 0


def test_sentinel_settings_make_one_shard_per_master() -> None:
    hosts: list[Any] = sentinel_hosts(
        ["10.0.0.5:26379", "[::1]:26380"], ["one", "two"], "pw", "spw"
    )
    asked_once = [host.pop("sentinel_kwargs") for host in hosts]
    assert hosts == [
        {"sentinels": [("10.0.0.5", 26379), ("::1", 26380)], "master_name": name, "password": "pw"}
        for name in ("one", "two")
    ]
    for kwargs in asked_once:
        retry = kwargs.pop("retry")
        assert isinstance(retry, Retry)
        assert retry.get_retries() == 0  # a silent sentinel is not asked again: the next is
        assert kwargs == {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "password": "spw"}
    plain: Any = sentinel_hosts(["s:1"], ["m"], "", "")[0]
    assert "password" not in plain
    assert "password" not in plain["sentinel_kwargs"]


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"REDIS_SENTINELS": "10.0.0.5"}, "host:port pairs"),
        ({"REDIS_SENTINELS": "10.0.0.5:x"}, "host:port pairs"),
        ({"REDIS_SENTINELS": "s:1", "REDIS_URL": "redis://r"}, "not both"),
    ],
)
def test_sentinel_settings_refuse_what_they_cannot_use(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], complaint: str
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=complaint):
        importlib.reload(chatsite.settings)
    monkeypatch.undo()
    importlib.reload(chatsite.settings)
