"""Deleting a conversation, undoing that for a while, and purging it for good.

A delete only marks the row (`deleted_at`, by the database's clock): from that moment it is
hidden everywhere (``get_conversation_for``, lists, search, sockets), its running answer is
stopped and every tab is told. For DELETE_UNDO_SECONDS it can be restored exactly as it
was; after that ``do_purge_deleted`` deletes it and its messages for real. The purge runs
in every server process's periodic sweep (streaming/runtime.py) and from the
``purge_deleted`` management command; until it runs, an expired row stays hidden and can no
longer be restored, so the window never depends on when the purge comes.

``do_purge_conversations`` (the ``purge_conversations`` command) is retention: it deletes
for good, the same way, every conversation with no activity for a given time, deleted or
not, except one whose answer is still streaming.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Exists, ExpressionWrapper, OuterRef, Q, QuerySet, Value
from django.db.models import DateTimeField as DateTimeOutput
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now
from django.db.models.sql import Query

from streaming import control, layer
from streaming.models import Attachment, Conversation, Message
from streaming.services import attachments, events, listing, storage
from streaming.services.quotas import lock_owner
from streaming.services.stops import do_request_stop

logger = logging.getLogger(__name__)


def _ago(period: timedelta) -> ExpressionWrapper[CombinedExpression]:
    """The database's "now" less ``period``: one clock for every process and host."""
    return ExpressionWrapper(Now() - Value(period), output_field=DateTimeOutput())


def _undo_until() -> ExpressionWrapper[CombinedExpression]:
    """The database's "now" less DELETE_UNDO_SECONDS: rows deleted before it are expired."""
    return _ago(timedelta(seconds=settings.DELETE_UNDO_SECONDS))


def do_delete_conversation(conversation: Conversation) -> None:
    """Delete a conversation (restorable for DELETE_UNDO_SECONDS): its running answer stops
    (on any process) and is saved as stopped, its own tabs say it was deleted, and every
    tab of its owner drops it from its list."""
    with transaction.atomic():
        # The owner's lock, which every start of an answer takes: an answer is either started
        # before (and stopped here) or finds the conversation deleted (may_answer).
        lock_owner(conversation.owner_id)
        deleted = Conversation.objects.filter(pk=conversation.pk, deleted_at__isnull=True).update(
            deleted_at=Now()
        )
        if not deleted:
            return  # deleted already (another tab): announced then
        # The flag reaches the answer at its next checkpoint even if the request is lost.
        stopping = do_request_stop(conversation.pk)
        conversation_id = conversation.pk
        events.on_commit(
            # The tabs first: they close on it, so the stopped answer's `done` reaches none.
            layer.to_conversation(conversation_id, control.deleted_event()),
            *(
                layer.to_answer(control.stop_request(conversation_id, answer_id))
                for answer_id in stopping
            ),
            listing.changed(conversation_id),
        )


def do_restore_conversation(
    user: AbstractBaseUser | AnonymousUser, conversation_id: Any
) -> Conversation | None:
    """Undo the delete of the user's conversation, if it is still within the undo window;
    every tab of the user lists it again. None when it is not the user's, not deleted, or
    too late (which of these stays unsaid)."""
    if not user.is_authenticated:
        return None
    try:
        with transaction.atomic():
            restored = Conversation.objects.filter(
                pk=conversation_id,
                owner_id=user.pk,
                deleted_at__isnull=False,
                deleted_at__gte=_undo_until(),
            ).update(deleted_at=None)
            if not restored:
                return None
            events.on_commit(listing.changed(conversation_id))
    except (ValueError, ValidationError):
        return None
    return Conversation.objects.get(pk=conversation_id)


def restorable(user: AbstractBaseUser | AnonymousUser, conversation_id: Any) -> bool:
    """Whether the user's deleted conversation can still be restored."""
    if not user.is_authenticated:
        return False
    try:
        return Conversation.objects.filter(
            pk=conversation_id, owner_id=user.pk, deleted_at__gte=_undo_until()
        ).exists()
    except (ValueError, ValidationError):
        return False


def do_purge_deleted() -> int:
    """Delete for good every conversation deleted longer ago than DELETE_UNDO_SECONDS, with
    its messages; return how many. Any process may run it at any time."""
    with transaction.atomic():
        expired = Conversation.objects.select_for_update().filter(deleted_at__lt=_undo_until())
        # Locked first: an Undo racing the purge either wins before it (and the row is no
        # longer expired when read here) or waits and then finds nothing to restore.
        ids = list(expired.values_list("pk", flat=True))
        purged = _delete_for_good(ids).conversations
    if purged:
        logger.info("Purged %d deleted conversation(s)", purged)
    return purged


@dataclass(frozen=True)
class Purged:
    """How many conversations, and messages of theirs, a purge deleted (or would)."""

    conversations: int
    messages: int


#: Conversations a purge looks at in one transaction, and deletes in one statement.
PURGE_BATCH_SIZE = 200


def _delete_for_good(ids: list[uuid.UUID]) -> Purged:
    """Delete these conversations and all their messages, for good."""
    conversations = messages = 0
    # A few at a time: SQLite refuses a statement of more than 32766 parameters.
    for start in range(0, len(ids), PURGE_BATCH_SIZE):
        some = ids[start : start + PURGE_BATCH_SIZE]
        storage.add_messages(Message.objects.filter(conversation_id__in=some), sign=-1)
        attachments.uncount(Attachment.objects.filter(conversation_id__in=some))
        _, per_model = Conversation.objects.filter(pk__in=some).delete()
        conversations += per_model.get(Conversation._meta.label, 0)
        messages += per_model.get(Message._meta.label, 0)
    return Purged(conversations, messages)


def do_purge_conversations(older_than: timedelta, *, apply: bool = False) -> Purged:
    """The conversations with no activity for ``older_than`` (deleted ones included) and
    their messages: counted, or with ``apply`` deleted for good and announced. One whose
    answer is still streaming is never touched.

    Last activity is the conversation's ``updated_at`` (every message and every answer's
    end moves it) and, should anything have added a message without it, the newest
    message. Times are the database's, as everywhere, read once: every statement of one
    purge, however long it runs, uses the same cutoff.
    """
    cutoff = database_now() - older_than
    if not apply:
        # One statement: a count of what a purge now would delete, nothing locked.
        counted = _stale(cutoff).aggregate(
            conversations=Count("pk", distinct=True), messages=Count("messages")
        )
        return Purged(counted["conversations"], counted["messages"])
    purged = Purged(0, 0)
    after: uuid.UUID | None = None
    # In batches, each its own transaction: a purge of years of conversations never holds
    # every owner's lock at once, nor loads every message, and what it has done stays done.
    # Taken in the order of their ids, so every conversation is looked at once.
    while (batch := _purge_batch(cutoff, after)) is not None:
        after, done = batch
        purged = Purged(purged.conversations + done.conversations, purged.messages + done.messages)
    logger.info(
        "Purged %d conversation(s) and %d message(s) with no activity for %g day(s)",
        purged.conversations,
        purged.messages,
        older_than / timedelta(days=1),
    )
    return purged


def database_now() -> datetime:
    """The database's clock, read once (every process and host shares it)."""
    now = Now()
    sql, params = Query(None).get_compiler(connection=connection).compile(now)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        (value,) = cursor.fetchone()
    # SQLite answers with text; its converters make the aware datetime PostgreSQL gives.
    for converter in connection.ops.get_db_converters(now):
        value = converter(value, now, connection)
    assert isinstance(value, datetime)
    return value


def _stale(cutoff: datetime) -> QuerySet[Conversation]:
    """The conversations with no activity since ``cutoff`` and no answer streaming."""
    active = Message.objects.filter(conversation=OuterRef("pk")).filter(
        Q(status=Message.Status.STREAMING) | Q(created_at__gte=cutoff)
    )
    return Conversation.objects.filter(updated_at__lt=cutoff).exclude(Exists(active))


def _purge_batch(cutoff: datetime, after: uuid.UUID | None) -> tuple[uuid.UUID, Purged] | None:
    """Purge the next PURGE_BATCH_SIZE stale conversations whose ids follow ``after``: the
    last id looked at and what was deleted, or None when none is left."""
    with transaction.atomic():
        stale = _stale(cutoff).order_by("pk")
        if after is not None:
            stale = stale.filter(pk__gt=after)
        candidates = list(stale.values_list("pk", "owner_id")[:PURGE_BATCH_SIZE])
        if not candidates:
            return None
        # Their owners' locks first, which every start of an answer takes (may_answer):
        # an answer being started now is committed, so seen below, before they are given;
        # one started later waits, then finds its conversation gone. In one order, so two
        # purges cannot each hold what the other waits for.
        for owner_id in sorted({owner_id for _, owner_id in candidates}):
            lock_owner(owner_id)
        ids = [pk for pk, _ in candidates]
        # And the rows, as do_purge_deleted does, which the sweep may run meanwhile; then,
        # in a statement of its own that sees what committed while it waited, which are
        # still stale.
        locked = Conversation.objects.select_for_update().filter(pk__in=ids)
        list(locked.values_list("pk", flat=True))
        rows = list(_stale(cutoff).filter(pk__in=ids).values_list("pk", "owner_id", "deleted_at"))
        purged = _delete_for_good([pk for pk, _, _ in rows])
        # Their open tabs say so and their owners' lists drop them; deleted ones were
        # announced when they were deleted.
        for pk, owner_id, deleted_at in rows:
            if deleted_at is None:
                events.on_commit(
                    layer.to_conversation(pk, control.deleted_event()),
                    layer.to_user(owner_id, control.conversation_removed_event(pk)),
                )
    return ids[-1], purged
