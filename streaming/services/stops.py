"""Stop from the moment of Send: a `stop` that names what the page sent, by its client_id.

The page knows its message (or retry) before it knows the answer to it, so its stop names
the message. Saved already, the message's streaming answer is flagged as any stop flags it
(``do_request_stop``). Not saved yet, the stop overtook it: sent on another socket
or to another process than the one saving it. It is kept then (``EarlyStop``), and the
transaction that saves the message uses it up (``take``): the answer is saved with its stop
flag set, and its process ends it `cancelled` without asking the model (runtime.py). Both
sides take the owner's lock first, so whichever comes second sees what the first wrote.
"""

import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from streaming.models import Conversation, EarlyStop, Message
from streaming.services.quotas import lock_owner

#: A stop kept for a message that never came (refused, or the page went away) is forgotten
#: after this long; a message is saved within seconds of its stop, or is sent again with
#: its stop behind it on one socket.
EARLY_STOP_SECONDS = 600


def do_stop_sent(conversation: Conversation, client_id: uuid.UUID) -> list[uuid.UUID]:
    """Stop the answer to what was sent as ``client_id``: a user message's answer, or the
    answer a retry made; return the ids of the answers flagged (for the fast request to
    their process). Not saved yet: keep the stop for it, and return none. Ended: none.
    """
    with transaction.atomic():
        # The lock do_post_user_message and do_regenerate take before they save.
        lock_owner(conversation.owner_id)
        sent = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if sent is None:
            now = timezone.now()
            EarlyStop.objects.filter(
                created_at__lt=now - timedelta(seconds=EARLY_STOP_SECONDS)
            ).delete()
            EarlyStop.objects.get_or_create(
                conversation=conversation, client_id=client_id, defaults={"created_at": now}
            )
            return []
    # A retry's client_id is its answer's; a message's answer is the one streaming below it.
    answer = Q(pk=sent.pk) if sent.role == Message.Role.ASSISTANT else Q(parent=sent)
    answer_id = (
        Message.objects.filter(answer, status=Message.Status.STREAMING)
        .values_list("pk", flat=True)
        .first()
    )
    if answer_id is None:
        return []  # its answer ended already
    return do_request_stop(conversation.pk, answer_id)


def take(conversation_id: uuid.UUID, client_id: uuid.UUID | None) -> bool:
    """Whether a stop came for ``client_id`` before it was saved (it is used up): called by
    the transaction that saves it, after the owner's lock."""
    if client_id is None:
        return False
    deleted, _ = EarlyStop.objects.filter(
        conversation_id=conversation_id, client_id=client_id
    ).delete()
    return deleted > 0


def do_request_stop(conversation_id: Any, message_id: Any = None) -> list[uuid.UUID]:
    """Flag the conversation's streaming answer (or ``message_id``) to stop; return its id.

    The flag is the request that cannot be lost: the answer's process reads it at its next
    checkpoint, even if the faster request over the channel layer never arrives.
    """
    answers = Message.objects.filter(
        conversation_id=conversation_id, status=Message.Status.STREAMING
    )
    if message_id is not None:
        try:
            answers = answers.filter(pk=uuid.UUID(str(message_id)))
        except ValueError:
            return []
    ids = list(answers.values_list("pk", flat=True))
    if ids:
        Message.objects.filter(pk__in=ids, status=Message.Status.STREAMING).update(
            stop_requested=True
        )
    return ids


def stop_requested(message_id: uuid.UUID) -> bool:
    """Whether someone asked to stop the answer ``message_id`` (its flag is set)."""
    return Message.objects.filter(pk=message_id, stop_requested=True).exists()
