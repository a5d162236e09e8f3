"""channels-redis's Pub/Sub layer with its sends pipelined, and with local delivery.

Pipelined: a process's PUBLISHes to one Redis go out together, one round trip for all that
queued while the last was under way.

channels-redis 4.3.0 (pinned in requirements.txt) sends every PUBLISH alone, holding the
shard's lock until Redis answers: a process sends one message per round trip, whatever
its number of answers, and a round trip on a busy event loop is as long as the loop's
turn. At 100 answers a process queued its deltas behind that lock for seconds. Here a
send joins an outbox; one task per shard sends the outbox as one pipeline (no
transaction), then the next one. Each send still returns only once Redis took its
message (or raises what the pipeline raised), and messages leave in the order they were
sent, so what a group hears from a process is in order, as before.

Local delivery: a message for a group whose only listening process is this one can be put
straight into this process's channels (``group_send_here``), skipping the round trip
through Redis, and a send there counts as under way until every socket took it, so that
what arrives meanwhile is sent as one piece after it, as with a send through Redis.
Whether any other process listens is known from Redis, not guessed (``only_here``): a
*fence*, a marker published to the group after everything this process sent it, answers
with the number of subscribers Redis delivered it to, and comes back through this
process's own subscription once everything published before it has been put into this
process's channels.

What this touches of channels-redis: ``RedisPubSubChannelLayer._get_layer`` (which loop
layer to make), ``RedisPubSubLoopLayer._shards``, ``channels``, ``groups``,
``_get_group_channel_name`` and ``_subscribe_to_channel``, and the shard's ``_lock``,
``_ensure_redis``, ``_redis`` and ``_receive_message``.
tests/stream/test_pubsub_layer.py fails if an upgrade moves them.
"""

import asyncio
import collections
import contextlib
import uuid
from typing import Any

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close

Outgoing = tuple[str, bytes, "asyncio.Future[int]"]

#: What a fence's bytes start with: no serialized message does (a msgpack map starts with
#: 0x80 to 0x8f, 0xde or 0xdf, an encrypted one with base64).
FENCE = b"\x00chatsite-fence:"
# A local send waits this long at most for every socket to take its message: a socket busy
# with a request of its own must not hold up the others' pieces for longer.
LOCAL_TAKE_SECONDS = 0.1
# A fence that has not come back after this is taken as "cannot tell".
FENCE_SECONDS = 5.0


class TakenQueue(asyncio.Queue[bytes]):
    """A channel's queue that tells when a message put into it has been taken out."""

    def __init__(self) -> None:
        super().__init__()
        self._put_count = 0
        self._taken_count = 0
        self._watching: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def _put(self, item: bytes) -> None:
        super()._put(item)  # asyncio.Queue's own hook
        self._put_count += 1

    def _get(self) -> bytes:
        item: bytes = super()._get()  # asyncio.Queue's own hook
        self._taken_count += 1
        while self._watching and self._watching[0][0] <= self._taken_count:
            _, taken = self._watching.popleft()
            if not taken.done():
                taken.set_result(None)
        return item

    def put_watched(self, item: bytes) -> "asyncio.Future[None]":
        """Put ``item`` in; the future is done once it has been taken out."""
        self.put_nowait(item)
        taken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watching.append((self._put_count, taken))
        return taken


class PipelinedShard(RedisSingleShardConnection):  # type: ignore[misc]  # untyped
    """One Redis host's connection whose publishes go out in pipelines."""

    def __init__(self, host: Any, channel_layer: Any) -> None:
        super().__init__(host, channel_layer)
        self._outbox: list[Outgoing] = []
        self._sender: asyncio.Task[None] | None = None
        #: Pipelines sent, for tests and metrics.
        self.pipelines = 0

    async def publish(self, channel: str, message: bytes) -> int:
        """Publish ``message``; the number of subscribers Redis delivered it to."""
        sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, message, sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_outbox(), name="layer-publisher")
        # Cancelled (a send that timed out), the message is still sent in its turn: taking
        # it out of the middle of the outbox would reorder what its group hears.
        return await asyncio.shield(sent)

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
                    received = await pipeline.execute()
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
                for (_, _, sent), count in zip(batch, received, strict=True):
                    if not sent.done():
                        sent.set_result(count)

    def _receive_message(self, message: Any) -> None:
        """Hand a message to this process's channels, or a fence to the one who waits."""
        if message is not None and message["data"].startswith(FENCE):
            back = self.channel_layer.fences.pop(message["data"], None)
            if back is not None and not back.done():
                back.set_result(None)
            return
        super()._receive_message(message)


class PipelinedLoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]  # untyped
    """channels-redis's layer for one event loop, on pipelined shards."""

    _shards: list[Any]
    channels: dict[str, asyncio.Queue[bytes]]
    groups: dict[str, set[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [PipelinedShard(shard.host, self) for shard in self._shards]
        #: Fences on their way back, by their bytes.
        self.fences: dict[bytes, asyncio.Future[None]] = {}

    async def _subscribe_to_channel(self, channel: str) -> None:
        self.channels[channel] = TakenQueue()
        await self._get_shard(channel).subscribe(channel)

    def is_here(self, channel: str) -> bool:
        """Whether ``channel`` is one of this process's."""
        return channel in self.channels

    async def only_here(self, group: str) -> bool:
        """Whether no other process listens to ``group`` now; once True, everything this
        process sent the group before has been put into its channels here.

        False when it cannot be told: several Redis hosts (a fence orders one), this
        process's own subscription not yet in effect, Redis out of reach.
        """
        if len(self._shards) != 1:
            return False
        group_channel = self._get_group_channel_name(group)
        members = self.groups.get(group_channel, set())
        listening_here = any(channel in self.channels for channel in members)
        fence = FENCE + uuid.uuid4().bytes
        back: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if listening_here:
            self.fences[fence] = back
        try:
            # After every earlier send of this process, in its turn: Redis delivers the
            # fence after them, to as many subscribers as it says.
            received: int = await self._shards[0].publish(group_channel, fence)
            if not listening_here:
                return received == 0
            if received != 1:
                return False
            # That one is this process, once the fence comes back through its subscription.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FENCE_SECONDS):
                    await back
                return True
            return False
        finally:
            self.fences.pop(fence, None)

    async def group_send_here(self, group: str, message: dict[str, Any]) -> None:
        """Put ``message`` into this process's channels in ``group``, and return once each
        took it (or after LOCAL_TAKE_SECONDS): never through Redis."""
        members = self.groups.get(self._get_group_channel_name(group), ())
        await self._put_here(list(members), message)

    async def send_here(self, channel: str, message: dict[str, Any]) -> None:
        """Put ``message`` into this process's ``channel``, as ``group_send_here`` does."""
        await self._put_here([channel], message)

    async def _put_here(self, channels: list[str], message: dict[str, Any]) -> None:
        data = self.channel_layer.serialize(message)
        taken = []
        for channel in channels:
            queue = self.channels.get(channel)
            if isinstance(queue, TakenQueue):
                taken.append(queue.put_watched(data))
        if taken:
            await asyncio.wait(taken, timeout=LOCAL_TAKE_SECONDS)


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
