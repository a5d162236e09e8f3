"""One answer, from the model API to the sockets and the database: a small state machine.

An answer belongs to the process that received its user message, not to a socket: closing
every tab does not end it. Two tasks carry it:

- the *reader* pulls the model's stream into ``pending`` (retrying failures that come before
  the first token). It sends nothing, so cancelling it at any point is safe, and that is how
  the upstream request is closed. While it waits to retry, it leaves a notice for the
  answer's task to send (``chat.retrying``);
- the answer's own task is the only one that sends. It turns ``pending`` into numbered deltas
  and ends the answer exactly once. A piece goes out as soon as it arrives; what arrives
  while a send is still under way goes out as one delta after it. So there is no fixed
  wait: pieces are batched only as far as the process (or the layer) is behind.

Stop is a request, not a cancel: ``request_stop`` sets a flag that the answer's task reads
between sends, so no send is ever cut in half. Checkpoints belong to the process runtime,
which saves every answer of the process in one batched write (``checkpoint`` /
``checkpointed``). When a checkpoint or the end finds the row no longer `streaming` (swept
by another process, deleted), the answer is *abandoned*: the reader is cancelled and nothing
more is sent or written.

Nothing follows an answer's `done`, which another process sends when it sweeps the row. So
an answer sends only while its row is surely still `streaming`: no stall of the process
(frozen, starved: ``stalls.LoopWatch``) since a write last found it so, and that write's
heartbeat too young for any sweep (``_lease``). Else it waits for a checkpoint to find it so
again, which the process writes at once after a stall. How an answer ends is ``ending``'s.
"""

import asyncio
import contextlib
import dataclasses
import logging

import httpx
from django.conf import settings
from django.db.models import CharField

from streaming import control, ending, layer, metrics, retries
from streaming.exceptions import ChatError, UpstreamError, UpstreamHTTPError
from streaming.logs import AnswerTimings, answer_context, describe, error_fields
from streaming.models import Message, group_name
from streaming.openai import ChatRequest, StreamEvent, other_token_field, redact, stream_chat
from streaming.services import answers, continuation
from streaming.stalls import LoopWatch, Mark

logger = logging.getLogger(__name__)

Status = Message.Status


class Answer:
    """Streams one answer: deltas to the group in `seq` order, its end to the database once."""

    def __init__(
        self,
        message: Message,
        request: ChatRequest,
        client: httpx.AsyncClient,
        token_fields: dict[tuple[str, str], str],
        watch: LoopWatch,
        saved: Mark,
    ) -> None:
        """``saved``: the moment (``watch.mark()``) just before the row was written."""
        self.message = message
        self.conversation_id = message.conversation_id
        self.request = request
        self.client = client
        #: Which max-tokens field each (API, model) accepts, learnt by the process.
        self.token_fields = token_fields
        #: The text of each delta sent, in order: deltas[n - 1] went out with seq n (a
        #: continued answer's stored text is its delta `seq`: continuation.deltas_so_far).
        self.deltas: list[str] = continuation.deltas_so_far(message)
        #: The `seq` it starts from: 0, or the pieces a continued answer already holds.
        self.first_seq = len(self.deltas)
        #: What the reader is told of its request when it ends (a document cut to fit): the
        #: error its row was written with, as an answer's is only then (conversations.py).
        self.notice = message.error
        #: Text received but not yet sent.
        self.pending: list[str] = []
        #: Characters received in all, sent or not.
        self.size = 0
        self.finish_reason = message.finish_reason
        self.model = ""
        self.usage: tuple[int, int] | None = None
        #: The `seq` the row holds (last checkpoint saved); None: unknown, rewrite it whole.
        self.saved_seq: int | None = message.seq
        self.task: asyncio.Task[None] | None = None
        self._stop: tuple[str, str] | None = None  # (status, error) someone asked to end with
        self._abandoned = False
        self._capped = False
        self._reader: asyncio.Task[None] | None = None
        self._reader_done = False
        #: The model's stream ended as it should (not failed, not cut short by us).
        self._finished = False
        self._ended = False
        #: Its last piece is sent and its ending is being written: only its `done` follows.
        self._sent_all = False
        self._reader_error: BaseException | None = None
        self._wake = asyncio.Event()
        self._layer_failing = False
        #: Pieces go straight to this process's sockets (``layer.only_here``), not through
        #: Redis; and whether a socket of another process has been heard from since it began.
        self._here = False
        self._heard_elsewhere = False
        #: A wait to retry, for the answer's task to announce: the reader never sends.
        self._notice: control.RetryingEvent | None = None
        #: Attempts, upstream status and timings, for the log.
        self.timings = AnswerTimings()
        self.watch = watch
        #: The moment before the last write that found the row `streaming` (its heartbeat
        #: is newer), and how long after it no sweep can have ended it, with a margin.
        self._confirmed = saved
        self._lease = settings.STREAM_ORPHAN_SECONDS - settings.STREAM_CHECKPOINT_SECONDS
        self._confirmation = asyncio.Event()

    @property
    def seq(self) -> int:
        """The `seq` of the last delta sent; deltas count from 1 without gaps."""
        return len(self.deltas)

    # --- requests from outside: any of them may come at any moment -------------------------

    def request_stop(self, status: str = Status.CANCELLED, error: str = "") -> None:
        """End the answer at the next safe point, keeping the text so far, as ``status``."""
        if self._stop is None:
            self._stop = (status, error)
            self._wake.set()

    def abandon(self) -> None:
        """The row is no longer this answer's to write: end now, and send nothing more."""
        self._abandoned = True
        self._wake.set()
        self._confirmation.set()

    def may_send(self) -> bool:
        """Whether the answer may send now: its row surely still `streaming`, and more than
        its `done` still to come."""
        now = self.watch.mark()
        confirmed = self._confirmed
        fresh = now.stalls == confirmed.stalls and now.at < confirmed.at + self._lease
        return fresh and not (self._abandoned or self._sent_all)

    async def _still_streaming(self) -> bool:
        """Wait until ``may_send``, that is until a checkpoint finds the row still `streaming`
        (after a stall, the runtime writes one at once); False once it never will."""
        while not self.may_send():
            if self._abandoned or self._sent_all:
                return False
            self._confirmation.clear()
            await self._confirmation.wait()
        return True

    def checkpoint(self) -> answers.Checkpoint:
        """What to save now: the deltas sent since the last saved checkpoint (or all of them)."""
        if self.saved_seq is None:
            return answers.Checkpoint(self.message.id, None, self.seq, "".join(self.deltas))
        tail = "".join(self.deltas[self.saved_seq :])
        return answers.Checkpoint(self.message.id, self.saved_seq, self.seq, tail)

    def checkpointed(
        self, checkpoint: answers.Checkpoint, saved: answers.Saved, begun: Mark
    ) -> None:
        """Learn what became of ``checkpoint``, whose write was begun at ``begun``."""
        if saved is answers.Saved.GONE:
            logger.info("Answer %s was ended elsewhere; abandoning it", self.message.id)
            self.abandon()
        elif saved is answers.Saved.UNSURE:
            # Still `streaming`, but this write (and its heartbeat) was not applied.
            self.saved_seq = None
        else:
            self.saved_seq = checkpoint.seq
            # Its heartbeat is newer than ``begun``: no sweep can take the row for a while.
            self._confirmed = begun
            self._confirmation.set()
            if saved is answers.Saved.STOP:
                self.request_stop()

    # --- the answer's task ------------------------------------------------------------------

    async def run(self) -> None:
        """Stream the answer to its end, whatever that end is, and save it once."""
        # Every record logged meanwhile, here or by what the answer calls, names the answer.
        with answer_context(self.log_fields()):
            await self._run()

    async def _run(self) -> None:
        try:
            # The model's first token is the longest wait: ask for it before announcing
            # (unless the answer was stopped before it began: then nothing is asked).
            if self._stop is None:
                self._reader = asyncio.create_task(self._read(), name=f"reader-{self.message.id}")
            await self._send(control.start_event(self.message))
            if self._stop is None:
                # Asked after the start went out, which it fences (layer.only_here).
                here = await layer.only_here(group_name(self.conversation_id))
                self._here = here and not self._heard_elsewhere
            await self._pump()
        except asyncio.CancelledError:
            # Cancelled from outside (the event loop is closing): save what we have.
            self.request_stop(Status.INTERRUPTED, answers.INTERRUPTED_MESSAGE)
            await self._end()
            raise
        except Exception:
            logger.exception("Answer %s failed", self.message.id)
            self.request_stop(Status.ERROR, ending.SERVER_ERROR)
        finally:
            await self._stop_reader()
        await self._end()

    async def _pump(self) -> None:
        """Send pending text as deltas until the reader is done or the answer must end.

        Each round sends all that is pending; what the reader takes in during that send is
        the next round's delta. A process that keeps up sends each piece alone, at once.
        """
        while True:
            self._wake.clear()
            if self._stop is not None or self._abandoned:
                return
            if self._notice is not None:
                notice, self._notice = self._notice, None
                await self._send(notice)
            elif self.pending:
                await self._flush()
            elif self._reader_done:
                return
            else:
                await self._wake.wait()

    async def _flush(self) -> None:
        # Confirmed first, so that a delta held back meanwhile takes in what came since.
        if not await self._still_streaming():
            return
        text = "".join(self.pending)
        self.pending.clear()
        self.deltas.append(text)
        await self._send(control.delta_event(self.message.id, self.seq, text))

    async def _send(self, event: control.ChatEvent) -> None:
        if not await self._still_streaming():
            return
        here = self._here
        if event["type"] == "chat.delta":
            metrics.piece_sent(here)
        if await layer.send(layer.to_conversation(self.conversation_id, event), here=here):
            self._layer_failing = False
        elif not self._layer_failing:
            # The stream goes on and the database keeps every word; sockets heal later.
            logger.warning("Channel layer send failed for answer %s", self.message.id)
            self._layer_failing = True

    async def _end(self) -> None:
        """Send the last piece and save the ending, unless the answer was abandoned."""
        if self._ended:
            return
        self._ended = True
        status, error = ending.status(
            self._finished, self._capped, self._stop, self._reader_error, self.finish_reason
        )
        if self.notice and status != Status.ERROR:
            error = " ".join(filter(None, [self.notice, error]))
        # Stopped before its first piece went out: one that came after the stop is not sent.
        if self.pending and (self.seq > self.first_seq or status != Status.CANCELLED):
            await self._flush()
        self._sent_all = True
        self._confirmation.set()  # sync replies waiting to be sent are not, now
        saved = None
        if not self._abandoned:
            outcome = answers.Outcome(
                status=status,
                content="".join(self.deltas),
                seq=self.seq,
                finish_reason=self.finish_reason,
                model=self.model,
                prompt_tokens=self.usage[0] if self.usage else None,
                completion_tokens=self.usage[1] if self.usage else None,
                error=error,
            )
            saved = await ending.save(self.message, outcome, abandoned=lambda: self._abandoned)
        fields = (self.finish_reason, self.usage, self.timings, self._reader_error)
        ending.log(self.message, saved or "abandoned", *fields)

    # --- the reader: the only code that touches the model API -------------------------------

    async def _read(self) -> None:
        self.timings.ask()
        try:
            await self._stream_with_retries()
            self._finished = True
        except ChatError as exc:
            # Its kind, not its message: a provider's message may quote the conversation.
            fields = {**self.timings.fields(), **error_fields(exc)}
            logger.warning(
                "Answer %s failed upstream: %s", self.message.id, describe(exc), extra=fields
            )
            self._reader_error = exc
        except Exception as exc:
            logger.exception("Answer %s: reading the model's stream failed", self.message.id)
            self._reader_error = exc
        finally:
            self._reader_done = True
            self._wake.set()

    async def _stop_reader(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.cancel()
            # asyncio.wait, not await: a cancel of this task itself must not be swallowed.
            await asyncio.wait({reader})

    async def _stream_with_retries(self) -> None:
        attempt = 0
        key = (self.request.base_url, self.request.model)
        if key in self.token_fields:
            self.request = dataclasses.replace(
                self.request, max_tokens_field=self.token_fields[key]
            )
        switched_field = False
        while True:
            try:
                self.timings.attempt()
                await self._stream()
                return
            except UpstreamHTTPError as exc:
                metrics.upstream_error(exc)
                self.timings.upstream_status = exc.status_code
                other = other_token_field(exc, self.request)
                if other is not None and not switched_field and self.size == 0:
                    # The provider wants the other name for the token limit; ask again now.
                    logger.info("Answer %s: the API wants %s", self.message.id, other)
                    self.request = dataclasses.replace(self.request, max_tokens_field=other)
                    self.token_fields[key] = other
                    switched_field = True
                    metrics.upstream_retry(None)
                    continue
                delay = retries.delay(exc, attempt, got_text=self.size > 0)
                if delay is None:
                    raise
                reason = retries.reason(exc)
                metrics.upstream_retry(exc)
            except UpstreamError as exc:
                metrics.upstream_error(exc)
                delay = retries.delay(exc, attempt, got_text=self.size > 0)
                if delay is None:
                    raise
                reason = retries.reason(exc)
                metrics.upstream_retry(exc)
            attempt += 1
            logger.info("Answer %s: retry %d in %.1f s", self.message.id, attempt, delay)
            # The page says why it waits; the answer's task sends it, as it sends everything.
            self._notice = control.retrying_event(self.message.id, attempt, delay, reason)
            self._wake.set()
            await asyncio.sleep(delay)

    async def _stream(self) -> None:
        async with contextlib.aclosing(stream_chat(self.client, self.request)) as events:
            async for event in events:
                if not self._apply(event):
                    return
                if self.pending:
                    # The events of one network read are all taken in before the answer's
                    # task runs, so a process that falls behind sends them as one delta.
                    self._wake.set()

    def _apply(self, event: StreamEvent) -> bool:
        """Take one event in; False once the answer has all it may keep."""
        if event.model and not self.model:
            self.model = self._provider_text(event.model, "model")
        if event.type == "text":
            room = settings.STREAM_MAX_ANSWER_CHARS - len(self.message.content) - self.size
            text = event.text[:room]
            if text:
                if self.timings.first_token is None:
                    metrics.first_token(self.timings.token())
                self.pending.append(text)
                self.size += len(text)
            if len(event.text) > room:
                self._capped = True
                self.finish_reason = "length"
                return False
        elif event.type == "finish":
            self.finish_reason = self._provider_text(event.finish_reason, "finish_reason")
        elif event.type == "usage":
            self.usage = (event.prompt_tokens, event.completion_tokens)
        # Reasoning is the model thinking aloud: not part of the answer, so not saved in it.
        return True

    def _provider_text(self, text: str, field: str) -> str:
        """A name the provider sent, fit to keep: no secret in it, no longer than its column."""
        column = Message._meta.get_field(field)
        assert isinstance(column, CharField)
        return redact(text, self.request)[: column.max_length]

    def log_fields(self) -> dict[str, object]:
        """What every log record about this answer carries: whose, where from, which model."""
        message = self.message
        # The conversation came with the new row; its owner is read only if it is at hand.
        cached = Message.conversation.is_cached(message)
        return {
            "answer_id": str(message.id),
            "conversation_id": str(self.conversation_id),
            "user_id": message.conversation.owner_id if cached else None,
            "provider": message.provider_name,
            "model": message.model,
        }

    async def reply_sync(self, after_seq: int, reply_channel: str) -> None:
        """Send a socket that missed some deltas the text after ``after_seq``, once the answer
        may send (after a stall, a checkpoint first); nothing once it has sent all it will:
        its `done` holds the whole text.

        A socket of another process asks for one as it joins: from then on every piece goes
        through Redis (``_here`` off before anything else is sent), and the reply, read
        when it is sent, holds every piece sent straight to this process's sockets."""
        if not layer.is_here(reply_channel):
            self._heard_elsewhere = True
            self._here = False
        if await self._still_streaming():
            reply = self.sync_reply(after_seq)
            await layer.send_to_channel(reply_channel, reply, here=self._here)

    def sync_reply(self, after_seq: int) -> control.SyncEvent:
        """The text after delta ``after_seq``, for a socket that missed some."""
        after = max(0, min(after_seq, self.seq))
        return control.sync_event(self.message.id, after, self.seq, "".join(self.deltas[after:]))
