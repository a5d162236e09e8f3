"""The process runtime: what one server process keeps for all its answers.

- the registry of the answers it runs (so shutdown can save them and the sweep can tell
  them from dead ones);
- one HTTP client for the model API, whose connections the answers share;
- the checkpoint writer: every STREAM_CHECKPOINT_SECONDS, one batched write saves the new
  text and a heartbeat of every answer of the process, and tells each what became of it;
  and at once after the process stood still (``stalls.LoopWatch``), since its answers send
  nothing more until a checkpoint finds their rows still `streaming`;
- the orphan sweep (and the purge of deleted conversations and unsent files), every
  STREAM_ORPHAN_SECONDS / 2,
  held back for STREAM_ORPHAN_SECONDS after the process found the database out of reach:
  no process could write its heartbeats then, and live ones need the time to write them;
- the control desk: one channel of the process, in the control group of every conversation
  the process runs an answer of, that hands `stop` and `sync` requests to the answers. One
  receiver for all answers, never cancelled while the process serves: channels-redis can
  lose a message meant for *another* channel of the process when a receive is cancelled
  mid-read, so answers must not each start and cancel their own;
- graceful shutdown: every running answer is saved, with all its text, as `interrupted`.

Under daphne it starts when the server starts (``start_with_server``, from chatsite/asgi.py).
Elsewhere (tests driving the ASGI app directly) it starts on first use, one per event loop:
HTTP connections and tasks belong to the loop that made them.
"""

import asyncio
import contextlib
import logging
import sys
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import httpx
from channels.layers import get_channel_layer
from django.conf import settings

from streaming import control, metrics
from streaming.aiohttp_transport import api_client, transport_name
from streaming.answer import Answer
from streaming.exceptions import RateLimited
from streaming.logs import describe, error_fields
from streaming.models import Message, control_group_name
from streaming.openai import ChatRequest, stream_chat
from streaming.services import answers, attachments, deletion, events, stops, titles
from streaming.services.conversations import Posted, Started
from streaming.services.database import reachable_for, to_async
from streaming.services.providers import ProviderConfig
from streaming.stalls import LoopWatch, Mark

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T", bound=Posted)

# The wait suggested to a user when the process is full: answers end every few seconds.
_BUSY_RETRY_SECONDS = 5
# How long a graceful shutdown waits for running answers to be saved.
_SHUTDOWN_SECONDS = 5.0


class Runtime:
    """The answers of one event loop (one server process), and the duties they share."""

    def __init__(self) -> None:
        #: The answers running here, by message id.
        self.answers: dict[uuid.UUID, Answer] = {}
        #: Answers being saved before they start (``room``), so they count against the limit.
        self.starting = 0
        # As many connections as answers may run (``check_room``), so none waits for one.
        self.http = api_client(
            httpx.Limits(
                max_connections=settings.STREAM_MAX_ANSWERS, max_keepalive_connections=100
            ),
            {"User-Agent": "chatsite"},
        )
        #: Which max-tokens field each (API, model) accepts, once one has refused the other.
        self.token_fields: dict[tuple[str, str], str] = {}
        #: Notices the process standing still for longer than a checkpoint interval.
        self.watch = LoopWatch(settings.STREAM_CHECKPOINT_SECONDS)
        self._duties: list[asyncio.Task[None]] = []
        #: The control desk's channel, once it has one.
        self._channel: str | None = None
        self._channel_ready = asyncio.Event()
        #: How many answers of each conversation run here.
        self._joined: dict[str, int] = {}
        #: The conversations whose control group the desk is in.
        self._in_group: set[str] = set()
        #: Titles being asked of the model (AUTO_TITLE), and sync replies waiting for their
        #: answer to be sure of its row, kept so they are not collected.
        self._tasks: set[asyncio.Task[None]] = set()
        #: The sweep round under way (its rows marked, then announced), if any.
        self._sweeping: asyncio.Task[None] | None = None
        #: Rounds of the sweep until files uploaded and never sent are looked for again.
        self._unsent_in = 0

    def start(self) -> None:
        """Start the checkpoint writer, the orphan sweep and the control desk."""
        if not self._duties:
            logger.info(
                "Answer runtime started: checkpoints every %g s, orphans after %g s, "
                "the model API over %s",
                settings.STREAM_CHECKPOINT_SECONDS,
                settings.STREAM_ORPHAN_SECONDS,
                transport_name(),
            )
            self.watch.start()
            self._duties = [
                asyncio.create_task(self._write_checkpoints(), name="checkpoint-writer"),
                asyncio.create_task(self._sweep(), name="orphan-sweep"),
                asyncio.create_task(self._serve_control(), name="control-desk"),
            ]

    def start_answer(self, started: Started, saved: Mark) -> Answer:
        """Start generating the answer a service saved (status `streaming`) as a task of
        this process, asking its provider; ``saved``: the moment before it was saved."""
        message = started.answer
        request = chat_request(started.provider, started.history)
        answer = Answer(message, request, self.http, self.token_fields, self.watch, saved)
        self.answers[message.id] = answer
        answer.task = asyncio.create_task(self._run(answer), name=f"answer-{message.id}")
        answer.task.add_done_callback(lambda _: self.answers.pop(message.id, None))
        return answer

    async def _run(self, answer: Answer) -> None:
        # In the control group before anyone hears of the answer, so its stop can reach it.
        conversation = str(answer.conversation_id)
        await self._join(conversation)
        try:
            await self._heed_early_stop(answer)
            with metrics.streaming(answer):
                await answer.run()
        finally:
            await self._leave(conversation)
        if settings.AUTO_TITLE:
            title = asyncio.create_task(self._title(answer.message), name=f"title-{conversation}")
            self._keep(title)

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Hold ``task`` (the loop holds only a weak reference) until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heed_early_stop(self, answer: Answer) -> None:
        """Stop the answer now if a stop came before the desk was in its control group.

        Such a stop was sent to nobody, but its flag is in the database (set by whoever
        stopped it, or when it was saved: services/stops.py). Read once the desk is in the
        group, so a stop that this read misses is one sent after it joined, which arrives.
        Stopped before it began, the answer ends `cancelled` without asking the model.
        """
        try:
            stopped = answer.message.stop_requested or await to_async(stops.stop_requested)(
                answer.message.id
            )
        except Exception:
            # The checkpoint writer reads the flag too, a moment later.
            logger.warning("Could not read the stop flag of answer %s", answer.message.id)
            return
        if stopped:
            answer.request_stop()

    async def _title(self, answer: Message) -> None:
        """Ask the model for a short title after a conversation's first answer (AUTO_TITLE);
        a failure keeps the title the conversation has."""
        try:
            asked = await to_async(titles.auto_title_request)(answer)
            if asked is None:
                return
            made_from, prompt, provider = asked
            request = chat_request(provider, prompt, max_tokens=titles.TITLE_MAX_TOKENS)
            events = stream_chat(self.http, request)
            text = "".join([event.text async for event in events if event.type == "text"])
            await to_async(titles.do_auto_title)(answer.conversation_id, made_from, text)
        except Exception as exc:
            # Its kind, not its text: the title request quotes the first message and answer,
            # and a provider's error (or an unreadable reply) may quote them back.
            conversation = answer.conversation_id
            kind = error_fields(exc)
            logger.warning(
                "No title from the model for %s: %s", conversation, describe(exc), extra=kind
            )

    # --- the control desk -------------------------------------------------------------------

    async def _join(self, conversation: str) -> None:
        self._joined[conversation] = self._joined.get(conversation, 0) + 1
        await self._add_to_group(conversation)

    async def _add_to_group(self, conversation: str) -> None:
        """Put the desk in the conversation's control group, unless it is there already."""
        layer = get_channel_layer()
        if layer is None or conversation in self._in_group:
            return
        try:
            async with asyncio.timeout(settings.STREAM_CHECKPOINT_SECONDS):
                await self._channel_ready.wait()
                assert self._channel is not None
                await layer.group_add(control_group_name(conversation), self._channel)
        except Exception:
            # The answer still runs and is saved, and a stop still arrives through the
            # database; the checkpoint writer tries again (``_rejoin``).
            logger.warning("Answers of conversation %s cannot hear stop and sync", conversation)
        else:
            self._in_group.add(conversation)

    async def _rejoin(self) -> None:
        """Try again for the conversations whose control group the desk could not join."""
        for conversation in [c for c in self._joined if c not in self._in_group]:
            await self._add_to_group(conversation)

    async def _leave(self, conversation: str) -> None:
        self._joined[conversation] -= 1
        if self._joined[conversation]:
            return
        del self._joined[conversation]
        layer = get_channel_layer()
        if layer is not None and conversation in self._in_group:
            self._in_group.discard(conversation)
            assert self._channel is not None
            with contextlib.suppress(Exception):
                await layer.group_discard(control_group_name(conversation), self._channel)

    async def _serve_control(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        while True:
            try:
                if self._channel is None:
                    self._channel = await layer.new_channel()
                    self._channel_ready.set()
                request = await layer.receive(self._channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("The control desk lost the channel layer; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            try:
                await self._handle(request)
            except Exception:
                logger.exception("Control request %r failed", request.get("type"))

    async def _handle(self, request: control.ControlRequest) -> None:
        conversation = request["conversation_id"]
        message_id = request["message_id"]
        for answer in list(self.answers.values()):
            if str(answer.conversation_id) != conversation:
                continue
            if message_id is not None and str(answer.message.id) != message_id:
                continue
            if request["type"] == "answer.stop":
                if request["reason"] == "deleted":
                    answer.abandon()
                else:
                    answer.request_stop()
            elif request["type"] == "answer.sync":
                # A task: after a stall the reply waits for a checkpoint, and the desk does not.
                reply = answer.reply_sync(int(request["after_seq"]), request["reply_channel"])
                self._keep(asyncio.create_task(reply, name=f"sync-{message_id}"))

    async def shutdown(self) -> None:
        """Save every running answer as `interrupted` (a few seconds at most), then stop."""
        running = list(self.answers.values())
        for answer in running:
            answer.request_stop(Message.Status.INTERRUPTED, answers.INTERRUPTED_MESSAGE)
        tasks = [a.task for a in running if a.task is not None]
        # A sweep round that has marked rows must still announce them, or their tabs and
        # lists would never hear those answers ended: it gets the same few seconds.
        if self._sweeping is not None:
            tasks.append(self._sweeping)
        # And what the process's views and admin committed, handed to this loop to send.
        tasks.append(asyncio.create_task(events.drain(), name="events-drain"))
        await asyncio.wait(tasks, timeout=_SHUTDOWN_SECONDS)
        self.watch.stop()
        for duty in self._duties:
            duty.cancel()
        await self.http.aclose()

    async def checkpoint_all(self) -> None:
        """Save every running answer's new text and heartbeat in one batched write."""
        running = list(self.answers.values())
        if not running:
            return
        # Taken before the write: its heartbeats are newer than this moment.
        mark = self.watch.mark()
        checkpoints = [answer.checkpoint() for answer in running]
        with metrics.checkpoint_write():
            saved = await to_async(answers.do_checkpoints, duty=True)(checkpoints)
        for answer, checkpoint in zip(running, checkpoints, strict=True):
            answer.checkpointed(checkpoint, saved[checkpoint.message_id], mark)

    async def _write_checkpoints(self) -> None:
        while True:
            # Every interval, or at once when the process stood still: its answers wait.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.STREAM_CHECKPOINT_SECONDS):
                    await self.watch.noticed.wait()
            self.watch.noticed.clear()
            try:
                await self.checkpoint_all()
            except Exception:
                # The rows keep their last checkpoint; the next round appends from there.
                logger.exception("Checkpoint write failed")
            await self._rejoin()

    async def _sweep(self) -> None:
        while True:
            try:
                # Not until the database has been back for STREAM_ORPHAN_SECONDS: while it
                # was out of reach, live processes could not write their heartbeats either.
                # Shielded, so shutdown's cancelling this duty does not cut a round between
                # marking its rows and announcing them (shutdown waits for it instead).
                if reachable_for() >= settings.STREAM_ORPHAN_SECONDS:
                    self._sweeping = asyncio.create_task(self._sweep_round(), name="sweep-round")
                    try:
                        await asyncio.shield(self._sweeping)
                    finally:
                        if self._sweeping.done():
                            self._sweeping = None
                else:
                    logger.info(
                        "Orphan sweep held back until the database has answered for %g s",
                        settings.STREAM_ORPHAN_SECONDS,
                    )
                # Conversations deleted longer ago than their undo window go for good; files
                # uploaded a day ago and never sent, every few hundred rounds.
                await to_async(deletion.do_purge_deleted)()
                self._unsent_in -= 1
                if self._unsent_in <= 0:
                    self._unsent_in = 500
                    await to_async(attachments.do_remove_unsent)()
            except Exception:
                logger.exception("Orphan sweep failed")
            await asyncio.sleep(settings.STREAM_ORPHAN_SECONDS / 2)

    async def _sweep_round(self) -> None:
        # Their `done` frames are sent before this returns (services/events.py).
        # The registry itself, read when the sweep runs: an answer started while the sweep
        # waited for its thread is alive too.
        swept = await to_async(answers.do_sweep_orphans, duty=True)(alive=self.answers.keys())
        metrics.swept(len(swept))


_runtimes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime]" = (
    weakref.WeakKeyDictionary()
)


def chat_request(
    provider: ProviderConfig, messages: list[dict[str, str]], *, max_tokens: int | None = None
) -> ChatRequest:
    """A request to ``provider``'s API, as the settings bound it (an answer's, a title's)."""
    return ChatRequest(
        base_url=provider.base_url,
        api_key=provider.api_key,
        headers=provider.headers,
        model=provider.model,
        messages=messages,
        read_timeout=settings.OPENAI_READ_TIMEOUT,
        connect_timeout=settings.OPENAI_CONNECT_TIMEOUT,
        max_tokens=max_tokens or settings.OPENAI_MAX_TOKENS or None,
        max_tokens_field=settings.OPENAI_MAX_TOKENS_FIELD,
    )


def current() -> Runtime:
    """The running loop's runtime, started if it was not yet."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is None:
        runtime = _runtimes[loop] = Runtime()
        runtime.start()
    return runtime


@contextlib.contextmanager
def room() -> Iterator[None]:
    """Hold a place for one answer while it is being saved, or raise RateLimited when this
    process already streams (or is starting) all the answers it may.

    Taken before the database work and held until the block ends, by which time the answer,
    if any, is in the registry: answers being started at the same time count too.
    """
    runtime = current()
    limit = settings.STREAM_MAX_ANSWERS
    if len(runtime.answers) + runtime.starting >= limit:
        raise RateLimited(
            f"The server is writing as many answers as it can ({limit} at once). "
            "Try again in a few seconds.",
            retry_after=_BUSY_RETRY_SECONDS,
        )
    runtime.starting += 1
    try:
        yield
    finally:
        runtime.starting -= 1


async def begin(service: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``service``, a ``do_*`` that may save a new answer (``Started``), on a database
    thread, and start generating that answer as a task of this process: the one way an
    answer starts, for the socket and the draft's first message alike.

    A place for the answer is held meanwhile (``room``): RateLimited, before anything is
    written, when this process runs all the answers it may. What the service returns is
    returned: ``Started``, or ``Resent`` for a message sent again (nothing starts).
    """
    with room():
        # The row is newer than this moment: a stall after it must be confirmed past.
        mark = current().watch.mark()
        result = await to_async(service)(*args, **kwargs)
        if isinstance(result, Started):
            current().start_answer(result, mark)
    return result


def start_with_server() -> None:
    """Under daphne: start the runtime with the server, and save answers before it exits.

    daphne speaks no ASGI lifespan, so this hooks into its Twisted reactor, which runs the
    asyncio loop: the runtime starts when the reactor runs, and SIGTERM's shutdown waits
    for running answers to be saved. Elsewhere (no reactor) it does nothing.
    """
    reactor: Any = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return
    from twisted.internet import defer

    def before_shutdown() -> "defer.Deferred[None]":
        runtime = _runtimes.get(asyncio.get_event_loop())
        if runtime is None:
            return defer.succeed(None)
        logger.info("Shutting down: saving %d running answer(s)", len(runtime.answers))
        return defer.Deferred.fromFuture(asyncio.ensure_future(runtime.shutdown()))

    reactor.callWhenRunning(lambda: asyncio.get_event_loop().call_soon(current))
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


async def shutdown() -> None:
    """Shut this loop's runtime down, if it has one (tests, management commands)."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.pop(loop, None)
    if runtime is not None:
        with contextlib.suppress(Exception):
            await runtime.shutdown()
