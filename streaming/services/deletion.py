"""Deleting a conversation, undoing that for a while, and purging it for good.

A delete only marks the row (`deleted_at`, by the database's clock): from that moment it is
hidden everywhere (``get_conversation_for``, lists, search, sockets), its running answer is
stopped and every tab is told. For DELETE_UNDO_SECONDS it can be restored exactly as it
was; after that ``do_purge_deleted`` deletes it and its messages for real. The purge runs
in every server process's periodic sweep (streaming/runtime.py) and from the
``purge_deleted`` management command; until it runs, an expired row stays hidden and can no
longer be restored, so the window never depends on when the purge comes.
"""

import functools
import logging
import uuid
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import DateTimeField as DateTimeOutput
from django.db.models import ExpressionWrapper, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now

from streaming import control
from streaming.models import Conversation
from streaming.services.answers import do_request_stop
from streaming.services.listing import announce_listing
from streaming.services.quotas import lock_owner

logger = logging.getLogger(__name__)


def _undo_until() -> ExpressionWrapper[CombinedExpression]:
    """The database's "now" less DELETE_UNDO_SECONDS: rows deleted before it are expired."""
    window = timedelta(seconds=settings.DELETE_UNDO_SECONDS)
    return ExpressionWrapper(Now() - Value(window), output_field=DateTimeOutput())


def do_delete_conversation(conversation: Conversation) -> None:
    """Delete a conversation (restorable for DELETE_UNDO_SECONDS): its running answer stops
    (on any process) and is saved as stopped, its own tabs say it was deleted, and every
    tab of its owner drops it from its list."""
    with transaction.atomic():
        # The owner's lock, which every start of an answer takes: an answer is either started
        # before (and stopped here) or finds the conversation deleted (_may_answer).
        lock_owner(conversation.owner_id)
        deleted = Conversation.objects.filter(pk=conversation.pk, deleted_at__isnull=True).update(
            deleted_at=Now()
        )
        if not deleted:
            return  # deleted already (another tab): announced then
        # The flag reaches the answer at its next checkpoint even if the request is lost.
        stopping = do_request_stop(conversation.pk)
        conversation_id = conversation.pk
        transaction.on_commit(functools.partial(_announce_deleted, conversation_id, stopping))
        announce_listing(conversation_id)


def _announce_deleted(conversation_id: uuid.UUID, stopping: list[uuid.UUID]) -> None:
    # The tabs first: they close on it, so the stopped answer's `done` reaches none of them.
    control.announce_after_commit(conversation_id, control.deleted_event())
    for answer_id in stopping:
        async_to_sync(control.ask_answer)(control.stop_request(conversation_id, answer_id))


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
            announce_listing(conversation_id)
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
        _, per_model = Conversation.objects.filter(pk__in=ids).delete()
    purged = per_model.get(Conversation._meta.label, 0)
    if purged:
        logger.info("Purged %d deleted conversation(s)", purged)
    return purged
