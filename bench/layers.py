"""The two channels-redis layers side by side: CPU per delivered frame, in one process.

G groups of one receiver each (a conversation with one open socket) get F frames each,
sent as the answers send deltas. The figure that matters is the CPU one process spends per
frame delivered, send and receive together: it bounds how many frames a second a process
can relay.
"""

import asyncio
import time
import uuid
from typing import Any

from django.utils.module_loading import import_string

GROUPS, FRAMES = 100, 20


async def _deliver(layer: Any) -> tuple[float, float]:
    """Frames a second, and CPU seconds per frame, for GROUPS x FRAMES group sends."""
    channels = []
    for group in range(GROUPS):
        channel = await layer.new_channel()
        await layer.group_add(f"bench.{group}", channel)
        channels.append(channel)
    received = 0
    all_in = asyncio.Event()

    async def receive(channel: str) -> None:
        nonlocal received
        for _ in range(FRAMES):
            await layer.receive(channel)
            received += 1
        if received == GROUPS * FRAMES:
            all_in.set()

    receivers = [asyncio.create_task(receive(channel)) for channel in channels]
    await asyncio.sleep(0.2)  # every receiver waiting, as sockets are
    started, cpu = time.perf_counter(), time.process_time()
    for seq in range(1, FRAMES + 1):
        frame = {"type": "chat.delta", "message_id": str(uuid.uuid4()), "seq": seq, "text": "Hi"}
        await asyncio.gather(*(layer.group_send(f"bench.{g}", frame) for g in range(GROUPS)))
    await asyncio.wait_for(all_in.wait(), 120)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await asyncio.gather(*receivers)
    await layer.flush()
    return GROUPS * FRAMES / wall, cpu / (GROUPS * FRAMES)


def run(redis_url: str) -> list[tuple[str, str]]:
    """Rows of (what, figure) for both layers, on the Redis at ``redis_url``."""
    from chatsite.channel_layers import redis_layer

    rows = []
    for kind, name, shipped in (
        ("core", "RedisChannelLayer", None),
        (
            "pubsub",
            "RedisPubSubChannelLayer as shipped",
            "channels_redis.pubsub.RedisPubSubChannelLayer",
        ),
        ("pubsub", "RedisPubSubChannelLayer, sends pipelined (chatsite.pubsub)", None),
    ):
        settings = redis_layer([redis_url], kind, prefix=f"bench-{uuid.uuid4().hex[:6]}")
        backend: Any = import_string(shipped or str(settings["BACKEND"]))
        layer = backend(**settings["CONFIG"])  # type: ignore[arg-type]
        per_second, cpu = asyncio.run(_deliver(layer))
        rows.append(
            (
                f"{name}: {GROUPS} groups of one receiver, {FRAMES} frames each",
                f"{per_second:,.0f} frames/s, {cpu * 1e6:,.0f} µs of CPU per frame",
            )
        )
    return rows
