"""channels-redis's Pub/Sub layer with its sends pipelined: a process's PUBLISHes to one
Redis go out together, one round trip for all that queued while the last was under way.

channels-redis 4.3.0 (pinned in requirements.txt) sends every PUBLISH alone, holding the
shard's lock until Redis answers: a process sends one message per round trip, whatever
its number of answers, and a round trip on a busy event loop is as long as the loop's
turn. At 100 answers a process queued its deltas behind that lock for seconds. Here a
send joins an outbox; one task per shard sends the outbox as one pipeline (no
transaction), then the next one. Each send still returns only once Redis took its
message (or raises what the pipeline raised), and messages leave in the order they were
sent, so what a group hears from a process is in order, as before.

What this touches of channels-redis: ``RedisPubSubChannelLayer._get_layer`` (which loop
layer to make), ``RedisPubSubLoopLayer._shards`` and the shard's ``_lock``,
``_ensure_redis`` and ``_redis``. tests/stream/test_pubsub_layer.py fails if an upgrade
moves them.
"""

import asyncio
from typing import Any

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close

Outgoing = tuple[str, bytes, "asyncio.Future[None]"]


class PipelinedShard(RedisSingleShardConnection):  # type: ignore[misc]  # untyped
    """One Redis host's connection whose publishes go out in pipelines."""

    def __init__(self, host: Any, channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._outbox: list[Outgoing] = []
        self._sender: asyncio.Task[None] | None = None
        #: Pipelines sent, for tests and metrics.
        self.pipelines = 0

    async def publish(self, channel: str, message: bytes) -> None:
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, message, sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_outbox(), name="layer-publisher")
        # Cancelled (a send that timed out), the message is still sent in its turn: taking
        # it out of the middle of the outbox would reorder what its group hears.
        await asyncio.shield(sent)

    async def _send_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                async with self._lock:
                    self._ensure_redis()
                    pipeline = self._redis.pipeline(transaction=False)
                    for channel, message, _ in batch:
                        pipeline.publish(channel, message)
                    self.pipelines += 1
                    await pipeline.execute()
            except asyncio.CancelledError:
                for _, _, sent in batch:
                    sent.cancel()
                raise
            except Exception as exc:
                for _, _, sent in batch:
                    if not sent.done():
                        sent.set_exception(exc)
                        sent.exception()  # retrieved: a cancelled waiter leaves it unread
            else:
                for _, _, sent in batch:
                    if not sent.done():
                        sent.set_result(None)


class PipelinedLoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]  # untyped
    """channels-redis's layer for one event loop, on pipelined shards."""

    _shards: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [PipelinedShard(shard.host, self) for shard in self._shards]


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]  # untyped
    """The CHANNEL_LAYERS backend: RedisPubSubChannelLayer, its sends pipelined."""

    def _get_layer(self) -> PipelinedLoopLayer:
        loop = asyncio.get_running_loop()
        layer: PipelinedLoopLayer | None = self._layers.get(loop)
        if layer is None:
            layer = PipelinedLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer
