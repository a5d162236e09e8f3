"""One answer being generated: a task that streams from the model API to the group and the DB.

A generation belongs to the process that received the user message, not to a socket: closing
every tab does not stop it. It listens on a channel of its own in the conversation's
control group (``Conversation.control_group``), so `stop` and `sync` requests reach it from a
socket on any process. Each process keeps its running generations in ``registry``, so that
shutdown can save them and the orphan sweep can tell them from dead ones.
"""

import asyncio
import contextlib
import logging
import random
import sys
import time
import uuid
import weakref
from typing import Any

import httpx
from channels.layers import get_channel_layer
from django.conf import settings

from streaming import services
from streaming.exceptions import UpstreamConnectError, UpstreamError, UpstreamHTTPError
from streaming.models import Conversation, Message
from streaming.openai import ChatRequest, StreamEvent, stream_chat

logger = logging.getLogger(__name__)

Status = Message.Status

# The first backoff before a retry; each next one doubles, with jitter.
_RETRY_BASE_SECONDS = 0.5
_RETRYABLE_STATUSES = {408, 409, 429}
# Delta frames per second one process aims to stay under, across all its answers.
_PROCESS_FRAMES_PER_SECOND = 200
# How long a graceful shutdown waits for running answers to be saved.
_SHUTDOWN_SECONDS = 5.0

# httpx clients hold connections bound to one event loop; daphne has one per process,
# tests have one per test, so the "shared" client is one per loop.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)
_sweepers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]]" = (
    weakref.WeakKeyDictionary()
)
_shutdown_hook_installed = False

#: The generations running in this process, by assistant message id.
registry: dict[uuid.UUID, "Generation"] = {}


def flush_interval() -> float:
    """How long deltas are batched: STREAM_FLUSH_SECONDS, longer when this process is busy.

    Every delta is a channel-layer send plus a receive per socket, so the frames a process
    sends per second are capped near _PROCESS_FRAMES_PER_SECOND; under that load each
    answer arrives in fewer, larger pieces instead of arriving late.
    """
    return max(settings.STREAM_FLUSH_SECONDS, len(registry) / _PROCESS_FRAMES_PER_SECOND)


def http_client() -> httpx.AsyncClient:
    """The process's shared client for the model API (one per event loop)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=20),
            headers={"User-Agent": "chatsite"},
        )
        _clients[loop] = client
    return client


async def start_generation(
    conversation: Conversation, message: Message, messages: list[dict[str, str]]
) -> "Generation":
    """Start generating ``message`` (status `streaming`) as a task of this process.

    Returns once the generation listens for `stop`, so a stop sent right after cannot miss it.
    """
    request = ChatRequest(
        base_url=settings.OPENAI_BASE_URL,
        api_key=settings.OPENAI_API_KEY,
        model=message.model,
        messages=messages,
        read_timeout=settings.OPENAI_READ_TIMEOUT,
        connect_timeout=settings.OPENAI_CONNECT_TIMEOUT,
    )
    generation = Generation(message, request, conversation)
    registry[message.id] = generation
    # The task exists before anything is awaited: if the caller is cancelled (its socket
    # closed), the answer still runs and ends, and never sits in the registry unended.
    generation.task = asyncio.create_task(generation.run(), name=f"generation-{message.id}")
    generation.task.add_done_callback(lambda _: registry.pop(message.id, None))
    _install_shutdown_hook()
    await generation.listening.wait()
    return generation


class Generation:
    """Streams one answer: deltas to the group in `seq` order, checkpoints and the end to the DB."""

    def __init__(self, message: Message, request: ChatRequest, conversation: Conversation) -> None:
        self.message = message
        self.request = request
        self.group = conversation.group_name
        self.control_group = conversation.control_group
        self.task: asyncio.Task[None] | None = None
        #: The text of each delta sent, in order: deltas[n - 1] went out with seq n.
        self.deltas: list[str] = []
        #: Text received but not yet sent to the group.
        self.pending: list[str] = []
        self.finish_reason = ""
        self.model = ""
        self.usage: tuple[int, int] | None = None
        #: Why the task was cancelled (cancelled by a user, interrupted by shutdown).
        self._end_status: str | None = None
        self._finishing = False
        self._channel: str | None = None
        self._listener: asyncio.Task[None] | None = None
        self._last_flush = self._last_checkpoint = time.monotonic()
        self._layer_failed = False
        #: Set once `stop` and `sync` can reach this generation (or never will).
        self.listening = asyncio.Event()

    @property
    def seq(self) -> int:
        """The `seq` of the last delta sent; deltas count from 1 without gaps."""
        return len(self.deltas)

    @property
    def content(self) -> str:
        """The answer text received so far, sent or not."""
        return "".join(self.deltas) + "".join(self.pending)

    def stop(self, status: str = Status.CANCELLED) -> None:
        """End the answer now: the upstream request is closed and the text so far saved."""
        if self._finishing or self._end_status is not None or self.task is None:
            return
        self._end_status = status
        self.task.cancel()

    # --- the control channel: stop and sync from any process ----------------------------

    async def listen(self) -> None:
        """Join the control group, so `stop` and `sync` reach this generation."""
        layer = get_channel_layer()
        try:
            if layer is None:
                return
            # The default prefix: channels-redis serves all of a process's channels that
            # share one through a single blocking read, so a stop is not queued behind it.
            self._channel = await layer.new_channel()
            await layer.group_add(self.control_group, self._channel)
            self._listener = asyncio.create_task(self._receive_control(layer, self._channel))
        except Exception:
            # The answer is still generated and saved; only stop and sync cannot reach it.
            logger.exception("Answer %s cannot listen for stop and sync", self.message.id)
            self._channel = None
        finally:
            self.listening.set()

    async def _receive_control(self, layer: Any, channel: str) -> None:
        while True:
            try:
                event = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Answer %s lost its control channel", self.message.id)
                await asyncio.sleep(1)
                continue
            if event.get("message_id") not in (None, str(self.message.id)):
                continue
            if event["type"] == "generation.stop":
                self.stop()
            elif event["type"] == "generation.sync":
                await self._reply_sync(layer, event)

    async def _reply_sync(self, layer: Any, event: dict[str, Any]) -> None:
        after = max(0, min(int(event.get("after_seq", 0)), self.seq))
        reply = {
            "type": "chat.sync",
            "message_id": str(self.message.id),
            "after_seq": after,
            "seq": self.seq,
            "text": "".join(self.deltas[after:]),
        }
        with contextlib.suppress(Exception):
            await layer.send(event["reply_channel"], reply)

    async def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        layer = get_channel_layer()
        if layer is not None and self._channel is not None:
            with contextlib.suppress(Exception):
                await layer.group_discard(self.control_group, self._channel)

    # --- the stream ---------------------------------------------------------------------

    async def run(self) -> None:
        """Stream the answer to its end, whatever that end is, and save it."""
        status: str = Status.COMPLETE
        error, cancelled_from_outside = "", False
        try:
            await self.listen()
            await self._announce({"type": "chat.start", "message_id": str(self.message.id)})
            await self._stream_with_retries()
        except UpstreamError as exc:
            logger.warning("Answer %s failed upstream: %s", self.message.id, exc.message)
            status, error = Status.ERROR, exc.message
        except asyncio.CancelledError:
            cancelled_from_outside = self._end_status is None
            status = self._end_status or Status.INTERRUPTED
            if status == Status.INTERRUPTED:
                error = services.INTERRUPTED_MESSAGE
        except Exception:
            logger.exception("Answer %s failed", self.message.id)
            status = Status.ERROR
            error = "Something went wrong on the server. The text so far is saved."
        self._finishing = True
        await self._finish(status, error)
        if cancelled_from_outside:
            raise asyncio.CancelledError

    async def _finish(self, status: str, error: str) -> None:
        await self._flush()
        outcome = services.Outcome(
            status=status,
            content=self.content,
            finish_reason=self.finish_reason,
            model=self.model,
            prompt_tokens=self.usage[0] if self.usage else None,
            completion_tokens=self.usage[1] if self.usage else None,
            error=error,
        )
        try:
            await services.to_async(services.do_finish)(self.message, outcome)
        except Exception:
            # The row stays `streaming` with its last checkpoint; the sweep will end it.
            logger.exception("Could not save the end of answer %s", self.message.id)
        await self._stop_listening()

    async def _stream_with_retries(self) -> None:
        attempt = 0
        while True:
            try:
                await self._stream()
                return
            except UpstreamError as exc:
                delay = self._retry_delay(exc, attempt)
                if delay is None:
                    raise
                attempt += 1
                logger.info(
                    "Answer %s: retry %d in %.1f s after: %s", self.message.id, attempt, delay, exc
                )
            await self._idle(delay)

    def _retry_delay(self, exc: UpstreamError, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None when we must not retry."""
        if self.deltas or self.pending or attempt >= settings.OPENAI_MAX_RETRIES:
            return None  # never after text: users would see the answer start twice
        if isinstance(exc, UpstreamHTTPError):
            if exc.status_code not in _RETRYABLE_STATUSES and exc.status_code < 500:
                return None
        elif not isinstance(exc, UpstreamConnectError):
            return None
        backoff = _RETRY_BASE_SECONDS * 2**attempt
        delay = backoff / 2 + random.uniform(0, backoff / 2)
        retry_after = exc.retry_after if isinstance(exc, UpstreamHTTPError) else None
        if retry_after is not None:
            if retry_after > settings.OPENAI_RETRY_MAX_SECONDS:
                return None  # retrying sooner than asked would only be refused again
            delay = max(delay, retry_after)
        return float(min(delay, settings.OPENAI_RETRY_MAX_SECONDS))

    async def _idle(self, seconds: float) -> None:
        """Wait, keeping the heartbeat fresh so the sweep knows this answer is alive."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self._seconds_to_next_tick()))
            await self._tick()

    async def _stream(self) -> None:
        events = stream_chat(http_client(), self.request)
        # The next event is awaited as a task so a quiet model still gets its pending
        # deltas flushed and its checkpoints written on time.
        upcoming: asyncio.Task[StreamEvent | None] | None = None
        try:
            while True:
                if upcoming is None:
                    upcoming = asyncio.ensure_future(anext(events, None))
                done, _ = await asyncio.wait({upcoming}, timeout=self._seconds_to_next_tick())
                if done:
                    event = upcoming.result()
                    upcoming = None
                    if event is None:
                        return
                    self._apply(event)
                await self._tick()
        finally:
            if upcoming is not None:
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upcoming
            await events.aclose()

    def _apply(self, event: StreamEvent) -> None:
        if event.model and not self.model:
            self.model = event.model
        if event.type == "text":
            self.pending.append(event.text)
        elif event.type == "finish":
            self.finish_reason = event.finish_reason
        elif event.type == "usage":
            self.usage = (event.prompt_tokens, event.completion_tokens)
        # Reasoning is the model thinking aloud: not part of the answer, so not saved in it.

    def _seconds_to_next_tick(self) -> float:
        now = time.monotonic()
        due = self._last_checkpoint + settings.STREAM_CHECKPOINT_SECONDS
        if self.pending:
            due = min(due, self._last_flush + flush_interval())
        return max(0.0, due - now)

    async def _tick(self) -> None:
        now = time.monotonic()
        if self.pending and now - self._last_flush >= flush_interval():
            await self._flush()
        if now - self._last_checkpoint >= settings.STREAM_CHECKPOINT_SECONDS:
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        # Flush first, so the saved text ends exactly at a seq a snapshot can resume from.
        await self._flush()
        self._last_checkpoint = time.monotonic()
        try:
            await services.to_async(services.do_checkpoint)(
                self.message.id, "".join(self.deltas), self.seq
            )
        except Exception:
            logger.exception("Checkpoint of answer %s failed", self.message.id)

    async def _flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self.pending:
            return
        self.deltas.append("".join(self.pending))
        self.pending.clear()
        await self._announce(
            {
                "type": "chat.delta",
                "message_id": str(self.message.id),
                "seq": self.seq,
                "text": self.deltas[-1],
            }
        )

    async def _announce(self, event: dict[str, Any]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            await layer.group_send(self.group, event)
        except Exception:
            # The stream goes on and the DB keeps every word; sockets re-sync later.
            if not self._layer_failed:
                logger.exception("Channel layer send failed for answer %s", self.message.id)
            self._layer_failed = True
        else:
            self._layer_failed = False


# --- process-wide duties: shutdown and the orphan sweep ---------------------------------


async def stop_all(status: str = Status.INTERRUPTED) -> None:
    """End every answer of this process and wait (a few seconds at most) until each is saved."""
    generations = list(registry.values())
    for generation in generations:
        generation.stop(status)
    tasks = [g.task for g in generations if g.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=_SHUTDOWN_SECONDS)


def _install_shutdown_hook() -> None:
    """Under daphne, save every running answer before the server exits (SIGTERM)."""
    global _shutdown_hook_installed
    reactor = sys.modules.get("twisted.internet.reactor")
    if _shutdown_hook_installed or reactor is None or not getattr(reactor, "running", False):
        return
    from twisted.internet import defer

    def before_shutdown() -> defer.Deferred[None]:
        logger.info("Shutting down: saving %d running answer(s)", len(registry))
        return defer.Deferred.fromFuture(asyncio.ensure_future(stop_all()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
    _shutdown_hook_installed = True


def ensure_sweeper() -> None:
    """Run the orphan sweep now and every half STREAM_ORPHAN_SECONDS in this process."""
    loop = asyncio.get_running_loop()
    task = _sweepers.get(loop)
    if task is None or task.done():
        _sweepers[loop] = loop.create_task(_sweep_forever(), name="orphan-sweep")


async def _sweep_forever() -> None:
    while True:
        try:
            await services.to_async(services.do_sweep_orphans)(alive=list(registry))
        except Exception:
            logger.exception("Orphan sweep failed")
        await asyncio.sleep(settings.STREAM_ORPHAN_SECONDS / 2)
