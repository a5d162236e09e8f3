"""A streaming answer's row: checkpoints, stop requests, the orphan sweep, the one ending.

Every write to a streaming answer is conditional on its status still being `streaming`, and
liveness is judged by the database's clock, so two processes (or a paused one and a live
one) can never both end the same answer.
"""

import enum
import functools
import logging
import operator
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, Value, When
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Concat, Now
from django.utils import timezone

from streaming import control, layer
from streaming.models import Conversation, Message
from streaming.services import continuation, events, listing, storage

logger = logging.getLogger(__name__)

Status = Message.Status


def _stale_before() -> ExpressionWrapper[CombinedExpression]:
    """The database's "now" minus STREAM_ORPHAN_SECONDS: older heartbeats lost their process."""
    return ExpressionWrapper(
        Now() - Value(timedelta(seconds=settings.STREAM_ORPHAN_SECONDS)),
        output_field=DateTimeField(),
    )


@dataclass(frozen=True)
class Checkpoint:
    """What one running answer asks to have saved."""

    message_id: uuid.UUID
    #: The `seq` its row holds (the last checkpoint saved), or None to rewrite the text whole.
    saved_seq: int | None
    #: The `seq` of the last delta sent; the row will hold the text up to it.
    seq: int
    #: Deltas saved_seq+1 … seq joined (appended to the row), or the whole text (rewritten).
    text: str


class Saved(enum.Enum):
    """What became of one checkpoint."""

    #: Saved, and the answer goes on.
    SAVED = "saved"
    #: Saved, and someone asked to stop the answer.
    STOP = "stop"
    #: The row is no longer `streaming` (swept, deleted): the answer must end, silently.
    GONE = "gone"
    #: The row holds another `seq` (an earlier write's outcome was unknown): rewrite it.
    UNSURE = "unsure"


# SQLite parses a long OR chain into a deep tree; its default depth limit is 1000.
_CHECKPOINT_BATCH = 100


def do_checkpoints(checkpoints: Sequence[Checkpoint]) -> dict[uuid.UUID, Saved]:
    """Save the text and a heartbeat of many answers in one statement per 100 of them.

    New text is appended to what the row holds, so a long answer costs what it grew by,
    not its whole length; the append applies only where the row still holds `saved_seq`,
    so a write whose first outcome was unknown is never applied twice.
    """
    results: dict[uuid.UUID, Saved] = {}
    for start in range(0, len(checkpoints), _CHECKPOINT_BATCH):
        results.update(_save_checkpoints(checkpoints[start : start + _CHECKPOINT_BATCH]))
    return results


def _save_checkpoints(batch: Sequence[Checkpoint]) -> dict[uuid.UUID, Saved]:
    beat = {"heartbeat_at": Now(), "updated_at": Now()}
    appends = [c for c in batch if c.saved_seq is not None]
    if appends:
        where = functools.reduce(
            operator.or_, (Q(pk=c.message_id, seq=c.saved_seq) for c in appends)
        )
        grown = [c for c in appends if c.text]
        changes: dict[str, Any] = dict(beat)
        if grown:
            changes["content"] = Concat(
                F("content"),
                Case(
                    *(When(pk=c.message_id, then=Value(c.text)) for c in grown), default=Value("")
                ),
            )
            changes["seq"] = Case(
                *(When(pk=c.message_id, then=Value(c.seq)) for c in grown),
                default=F("seq"),
                output_field=Message._meta.get_field("seq"),
            )
        Message.objects.filter(where, status=Status.STREAMING).update(**changes)
    for c in batch:
        if c.saved_seq is None:
            Message.objects.filter(pk=c.message_id, status=Status.STREAMING).update(
                content=c.text, seq=c.seq, **beat
            )
    rows = {
        pk: (status, seq, stop)
        for pk, status, seq, stop in Message.objects.filter(
            pk__in=[c.message_id for c in batch]
        ).values_list("pk", "status", "seq", "stop_requested")
    }
    results = {}
    for c in batch:
        status, seq, stop = rows.get(c.message_id, (None, None, False))
        if status != Status.STREAMING:
            results[c.message_id] = Saved.GONE
        elif seq != c.seq:
            results[c.message_id] = Saved.UNSURE
        else:
            results[c.message_id] = Saved.STOP if stop else Saved.SAVED
    return results


INTERRUPTED_MESSAGE = (
    "The server stopped while answering. The text up to that moment is saved; "
    "you can retry the answer."
)


#: Answers one sweep marks in one statement (SQLite takes at most 32766 parameters).
SWEEP_BATCH_SIZE = 500


def do_sweep_orphans(*, alive: Iterable[uuid.UUID] = ()) -> list[Message]:
    """Mark streaming answers whose heartbeat is stale as `interrupted`, and announce each
    ending with `done`; return the answers ended.

    Their process died (or stalled) without finishing them; they keep their last checkpointed
    text. Staleness is judged by the database's clock, on rows locked until they are marked,
    so a heartbeat written before wins and one written after finds the row ended: a process
    that comes back stops without a word. Any process may sweep, at once too: a row another
    sweep has locked is that sweep's to mark, so each answer is announced once.
    ``alive``: the answers the calling process runs, which are not orphans whatever their age.
    """
    stale = _stale_before()
    # A row without a heartbeat (written by hand, say) is judged by its last update.
    is_stale = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, updated_at__lt=stale)
    orphans = (
        Message.objects.select_for_update(skip_locked=True)
        .filter(is_stale, status=Status.STREAMING)
        .exclude(pk__in=list(alive))
    )
    swept: list[Message] = []
    while True:
        # One statement per batch, each batch its own transaction: thousands of orphans cost
        # a few statements, and each batch is announced as soon as it is saved.
        with transaction.atomic():
            ids = list(orphans.values_list("pk", flat=True)[:SWEEP_BATCH_SIZE])
            Message.objects.filter(pk__in=ids).update(
                status=Status.INTERRUPTED,
                error=INTERRUPTED_MESSAGE,
                heartbeat_at=None,
                updated_at=timezone.now(),
            )
            continuation.swept(ids)
            storage.add_messages(Message.objects.filter(pk__in=ids))
            # A purge of its conversation (do_purge_deleted) may delete a row between the
            # update and this read: it needs no announcement then, and the others still do.
            batch = list(Message.objects.filter(pk__in=ids).order_by("created_at", "pk"))
            for message in batch:
                events.on_commit(_ended(message), listing.changed(message.conversation_id))
        swept += batch
        if len(ids) < SWEEP_BATCH_SIZE:
            break
    if swept:
        logger.warning("Marked %d orphaned answer(s) interrupted", len(swept))
    return swept


def _ended(answer: Message) -> layer.Outgoing:
    """The `done` every tab of the conversation hears for an answer that ended."""
    return layer.to_conversation(answer.conversation_id, control.done_event(answer))


@dataclass(frozen=True)
class Outcome:
    """How one answer ended, as it is saved and announced."""

    status: str
    content: str
    #: The seq of the last delta in ``content``.
    seq: int
    finish_reason: str = ""
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str = ""


def do_finish(message: Message, outcome: Outcome) -> bool:
    """Save an answer's ending and announce it with `done`; True if saved.

    Only an answer still `streaming` can end: one swept or deleted meanwhile has had its
    ending (or needs none), so this writes and announces nothing and returns False.
    """
    ending = {
        "status": outcome.status,
        "content": outcome.content,
        "seq": outcome.seq,
        "finish_reason": outcome.finish_reason,
        "model": outcome.model or message.model,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "error": outcome.error,
        "heartbeat_at": None,
    }
    now = timezone.now()
    with transaction.atomic():
        saved = Message.objects.filter(pk=message.pk, status=Status.STREAMING).update(
            **ending, updated_at=now
        )
        if not saved:
            logger.info("Answer %s had already ended (swept or deleted)", message.pk)
            return False
        for field, value in ending.items():
            setattr(message, field, value)
        continuation.ended(message)  # a continued answer's usage is its parts' together
        storage.add_to_owner_of(message.conversation_id, len(outcome.content))
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=now)
        # No longer answering: every list shows that too.
        events.on_commit(_ended(message), listing.changed(message.conversation_id))
    return True
