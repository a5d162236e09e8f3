"""One answer being generated: a task that streams from the model API to the group and the DB.

A generation belongs to the process that received the user message, not to a socket: closing
every tab does not stop it. Each process keeps its running generations in a registry, so
shutdown can find them.
"""

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from typing import Any

import httpx
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from streaming import services
from streaming.exceptions import UpstreamError
from streaming.models import Conversation, Message
from streaming.openai import ChatRequest, StreamEvent, stream_chat

logger = logging.getLogger(__name__)

Status = Message.Status

# httpx clients hold connections bound to one event loop; daphne has one per process,
# tests have one per test, so the "shared" client is one per loop.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)

#: The generations running in this process, by assistant message id.
registry: dict[uuid.UUID, "Generation"] = {}


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


def start_generation(
    conversation: Conversation, message: Message, messages: list[dict[str, str]]
) -> "Generation":
    """Start generating ``message`` (status `streaming`) as a task of this process."""
    request = ChatRequest(
        base_url=settings.OPENAI_BASE_URL,
        api_key=settings.OPENAI_API_KEY,
        model=message.model,
        messages=messages,
        read_timeout=settings.OPENAI_READ_TIMEOUT,
        connect_timeout=settings.OPENAI_CONNECT_TIMEOUT,
    )
    generation = Generation(message, request, conversation.group_name)
    registry[message.id] = generation
    generation.task = asyncio.create_task(generation.run(), name=f"generation-{message.id}")
    generation.task.add_done_callback(lambda _: registry.pop(message.id, None))
    return generation


class Generation:
    """Streams one answer: deltas to the group in `seq` order, checkpoints and the end to the DB."""

    def __init__(self, message: Message, request: ChatRequest, group: str) -> None:
        self.message = message
        self.request = request
        self.group = group
        self.task: asyncio.Task[None] | None = None
        #: Every piece of answer text received, in order; "".join() is the content.
        self.parts: list[str] = []
        #: Text received but not yet sent to the group.
        self.pending: list[str] = []
        #: The `seq` of the last delta sent; deltas count from 1 without gaps.
        self.seq = 0
        self.finish_reason = ""
        self.model = ""
        self.usage: tuple[int, int] | None = None
        self._last_flush = self._last_checkpoint = time.monotonic()
        self._layer_failed = False

    @property
    def content(self) -> str:
        """The answer text received so far."""
        return "".join(self.parts)

    async def run(self) -> None:
        """Stream the answer to its end, whatever that end is, and save it."""
        status, error = Status.COMPLETE, ""
        try:
            await self._announce({"type": "chat.start", "message_id": str(self.message.id)})
            await self._stream()
        except UpstreamError as exc:
            logger.warning("Answer %s failed upstream: %s", self.message.id, exc.message)
            status, error = Status.ERROR, exc.message
        except asyncio.CancelledError:
            status = Status.CANCELLED
            raise
        except Exception:
            logger.exception("Answer %s failed", self.message.id)
            status = Status.ERROR
            error = "Something went wrong on the server. The text so far is saved."
        finally:
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
            await database_sync_to_async(services.do_finish)(self.message, outcome)

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
            self.parts.append(event.text)
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
            due = min(due, self._last_flush + settings.STREAM_FLUSH_SECONDS)
        return max(0.0, due - now)

    async def _tick(self) -> None:
        now = time.monotonic()
        if self.pending and now - self._last_flush >= settings.STREAM_FLUSH_SECONDS:
            await self._flush()
        if now - self._last_checkpoint >= settings.STREAM_CHECKPOINT_SECONDS:
            self._last_checkpoint = now
            await database_sync_to_async(services.do_checkpoint)(self.message.id, self.content)

    async def _flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        self.seq += 1
        await self._announce(
            {
                "type": "chat.delta",
                "message_id": str(self.message.id),
                "seq": self.seq,
                "text": text,
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
