"""The Pub/Sub layer's pipelined sends (chatsite/pubsub.py), on a real Redis.

What it must keep of channels-redis's own layer: every message delivered, in the order it
was sent, each send returning once Redis took it and raising when Redis is gone; what it
adds: sends queued while a pipeline is under way go out together.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels_redis.pubsub import RedisPubSubLoopLayer, RedisSingleShardConnection

from chatsite.channel_layers import redis_pubsub_layer
from chatsite.pubsub import PipelinedPubSubChannelLayer, PipelinedShard
from tests.support.servers import RedisServer
from tests.support.waiting import until


def make_layer(url: str) -> PipelinedPubSubChannelLayer:
    config = redis_pubsub_layer([url], prefix=f"test-{uuid.uuid4().hex[:8]}")["CONFIG"]
    return PipelinedPubSubChannelLayer(**config)  # type: ignore[arg-type]


@pytest.fixture
async def layer(redis_url: str) -> AsyncIterator[PipelinedPubSubChannelLayer]:
    layer = make_layer(redis_url)
    yield layer
    await layer.flush()


def shard_of(layer: PipelinedPubSubChannelLayer) -> PipelinedShard:
    shard = layer._get_layer()._shards[0]
    assert isinstance(shard, PipelinedShard)
    return shard


def test_the_production_settings_choose_this_layer() -> None:
    assert redis_pubsub_layer(["redis://x"])["BACKEND"] == (
        f"{PipelinedPubSubChannelLayer.__module__}.{PipelinedPubSubChannelLayer.__name__}"
    )


def test_the_channels_redis_parts_it_builds_on_are_where_it_expects() -> None:
    # An upgrade of channels-redis that moved these would break the layer quietly.
    assert hasattr(RedisPubSubLoopLayer, "_get_shard")
    shard = RedisSingleShardConnection("redis://127.0.0.1:1", None)
    assert isinstance(shard._lock, asyncio.Lock)
    assert callable(shard._ensure_redis)
    assert shard._redis is None
    assert "_shards" in RedisPubSubLoopLayer(hosts=["redis://127.0.0.1:1"]).__dict__


async def test_sends_queued_during_a_pipeline_go_out_together_in_order(
    layer: PipelinedPubSubChannelLayer,
) -> None:
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("g", channel)
    await layer.send(channels[0], {"type": "warm.up"})  # the connection made, not measured
    assert (await layer.receive(channels[0]))["type"] == "warm.up"
    before = shard_of(layer).pipelines

    await asyncio.gather(*(layer.group_send("g", {"type": "x", "n": n}) for n in range(200)))

    # All 200 were queued before the first pipeline left: one round trip, not 200.
    assert shard_of(layer).pipelines - before == 1
    for channel in channels:
        got = [(await layer.receive(channel))["n"] for _ in range(200)]
        assert got == list(range(200))


async def test_a_sender_that_waits_for_each_send_gets_each_in_its_own_pipeline(
    layer: PipelinedPubSubChannelLayer,
) -> None:
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    before = shard_of(layer).pipelines
    for n in range(5):
        await layer.group_send("g", {"type": "x", "n": n})
    assert shard_of(layer).pipelines - before == 5
    assert [(await layer.receive(channel))["n"] for _ in range(5)] == list(range(5))


async def test_sends_to_a_redis_that_is_gone_raise_and_later_ones_go_through(
    tmp_path: Any,
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        layer = make_layer(server.url)
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        server.kill()
        results = await asyncio.gather(
            *(layer.group_send("g", {"type": "x", "n": n}) for n in range(10)),
            return_exceptions=True,
        )
        # Every one of them says it failed: none is left waiting, none claims success.
        assert all(isinstance(result, Exception) for result in results)

        server.start()
        receivers: list[str] = []

        async def joined() -> bool:
            # channels-redis's own subscribe fails once on the connection Redis dropped.
            try:
                receivers.append(await layer.new_channel())
                await layer.group_add("h", receivers[-1])
            except Exception:
                return False
            return True

        await until(joined, what="the layer back on the restarted Redis", timeout=20.0)
        await layer.group_send("h", {"type": "x", "n": "after"})
        assert (await layer.receive(receivers[-1]))["n"] == "after"
        await layer.flush()
    finally:
        server.kill()
