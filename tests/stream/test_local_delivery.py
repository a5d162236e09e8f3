"""Local delivery in the Pub/Sub layer (chatsite/pubsub.py), on a real Redis.

Two layer objects stand for two processes: each has its own connections, so Redis counts
each as a subscriber of its own. What must hold: ``only_here`` says True only when no other
process listens, and by then everything this process sent the group before is in its
channels; a fence reaches no socket anywhere; a local send is under way until its socket
took the message; no Redis, several Redis hosts or another listener: never "only here".
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from chatsite import pubsub
from chatsite.channel_layers import redis_pubsub_layer
from chatsite.pubsub import PipelinedPubSubChannelLayer, TakenQueue
from streaming import layer as layer_module
from tests.support.servers import RedisServer
from tests.support.waiting import until


def make_layer(*urls: str, prefix: str) -> PipelinedPubSubChannelLayer:
    config = redis_pubsub_layer(list(urls), prefix=prefix)["CONFIG"]
    return PipelinedPubSubChannelLayer(**config)  # type: ignore[arg-type]


@pytest.fixture
async def processes(redis_url: str) -> AsyncIterator[tuple[Any, Any]]:
    """Two "processes" on one Redis, with one prefix, as the daphnes of one site have."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    here, there = make_layer(redis_url, prefix=prefix), make_layer(redis_url, prefix=prefix)
    yield here, there
    await here.flush()
    await there.flush()


async def socket_in(layer: Any, group: str) -> str:
    """A new channel of ``layer``'s process in ``group``, its subscription in effect."""
    channel: str = await layer.new_channel()
    await layer.group_add(group, channel)
    # In effect once a message sent to the group after it comes back to this channel.
    await layer.group_send(group, {"type": "warm.up"})
    assert (await asyncio.wait_for(layer.receive(channel), 10))["type"] == "warm.up"
    return channel


def queue_of(layer: Any, channel: str) -> "asyncio.Queue[bytes]":
    queue: asyncio.Queue[bytes] = layer._get_layer().channels[channel]
    return queue


async def test_alone_in_the_group_it_is_only_here_with_what_it_sent_before_already_here(
    processes: tuple[Any, Any],
) -> None:
    here, _ = processes
    channel = await socket_in(here, "g")
    await asyncio.gather(*(here.group_send("g", {"type": "x", "n": n}) for n in range(50)))

    assert await here.only_here("g") is True

    # The fence came back after those 50: all are in the channel, none still on its way.
    assert queue_of(here, channel).qsize() == 50
    sent_here = asyncio.create_task(here.group_send_here("g", {"type": "x", "n": 50}))
    got = [(await here.receive(channel))["n"] for _ in range(51)]
    await sent_here
    assert got == list(range(51))
    assert queue_of(here, channel).qsize() == 0  # the fence itself reached no channel


async def test_another_process_in_the_group_means_not_only_here_and_hears_no_fence(
    processes: tuple[Any, Any],
) -> None:
    here, there = processes
    await socket_in(here, "g")
    theirs = await socket_in(there, "g")

    assert await here.only_here("g") is False
    assert await there.only_here("g") is False

    # Their socket heard neither fence: the next thing it takes is the next message.
    await here.group_send("g", {"type": "after"})
    assert (await asyncio.wait_for(there.receive(theirs), 10))["type"] == "after"
    assert queue_of(there, theirs).qsize() == 0


async def test_nobody_anywhere_is_only_here_and_one_socket_elsewhere_is_not(
    processes: tuple[Any, Any],
) -> None:
    here, there = processes
    assert await here.only_here("empty") is True
    await socket_in(there, "g")
    assert await here.only_here("g") is False


async def alone(
    processes: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, take_seconds: float
) -> tuple[Any, str]:
    """The first process with a socket in group "g", its local sends bounded so."""
    monkeypatch.setattr(pubsub, "LOCAL_TAKE_SECONDS", take_seconds)
    here, _ = processes
    return here, await socket_in(here, "g")


async def test_a_local_send_is_under_way_until_its_socket_takes_the_message(
    processes: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, channel = await alone(processes, monkeypatch, 60.0)
    queue = queue_of(here, channel)
    assert isinstance(queue, TakenQueue)

    sending = asyncio.create_task(here.group_send_here("g", {"type": "x", "n": 1}))
    await until(lambda: queue.qsize() == 1, what="the message in the socket's channel")
    assert not sending.done()  # put, and waiting for the socket to take it

    assert (await here.receive(channel))["n"] == 1
    await asyncio.wait_for(sending, 10)


async def test_a_local_send_nobody_takes_returns_after_its_bound_and_the_message_waits(
    processes: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, channel = await alone(processes, monkeypatch, 0.01)
    await asyncio.wait_for(here.group_send_here("g", {"type": "x", "n": 1}), 10)
    await asyncio.wait_for(here.send_here(channel, {"type": "x", "n": 2}), 10)
    assert [(await here.receive(channel))["n"] for _ in range(2)] == [1, 2]


async def test_a_channel_of_another_process_is_not_here(processes: tuple[Any, Any]) -> None:
    here, there = processes
    mine, theirs = await here.new_channel(), await there.new_channel()
    assert here.is_here(mine)
    assert not here.is_here(theirs)


async def test_several_redis_hosts_are_never_only_here(redis_url: str) -> None:
    # A fence orders what one Redis delivers; a group and a fence could sit on two.
    layer = make_layer(redis_url, redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    try:
        assert await layer.only_here("g") is False
    finally:
        await layer.flush()


async def test_a_redis_that_is_gone_is_never_only_here(
    own_redis: RedisServer, settings: Any
) -> None:
    settings.CHANNEL_LAYERS = {
        "default": redis_pubsub_layer([own_redis.url], prefix=f"t-{uuid.uuid4().hex[:8]}")
    }
    settings.STREAM_LOCAL_DELIVERY = True
    layer = get_channel_layer()
    await socket_in(layer, "g")
    assert await layer_module.only_here("g") is True
    own_redis.kill()
    # The layer raises; the answer's side hears "cannot tell", and uses the layer.
    with pytest.raises((RedisError, OSError)):
        await layer.only_here("g")
    assert await layer_module.only_here("g") is False


async def test_turned_off_it_is_never_only_here(redis_url: str, settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": redis_pubsub_layer([redis_url], prefix=f"t-{uuid.uuid4().hex[:8]}")
    }
    settings.STREAM_LOCAL_DELIVERY = False
    layer = get_channel_layer()
    assert await layer.only_here("g") is True  # the layer could,
    assert await layer_module.only_here("g") is False  # but the setting says no
    await layer.flush()
