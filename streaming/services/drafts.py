"""A conversation is saved only when its first message is sent.

"New chat" opens a draft page with no row behind it; its first message creates the
conversation, that message and its streaming answer in one transaction, so a refusal (a bad
message or prompt, a limit) leaves nothing at all, and a resend of the same message (same
client_id) finds the conversation it made rather than making a second one.
"""

import uuid
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from streaming.models import Message
from streaming.services import providers, storage
from streaming.services.conversations import (
    Posted,
    Resent,
    do_create_conversation,
    do_post_user_message,
)
from streaming.services.quotas import lock_owner
from streaming.text import validate_content, validate_system_prompt


def do_start_conversation(
    owner: User,
    content: Any,
    client_id: uuid.UUID,
    *,
    system_prompt: Any = None,
    provider_id: Any = None,
    model: Any = None,
    attachment_ids: Any = None,
) -> Posted:
    """Create the conversation with its first message and that message's answer, in status
    `streaming` (Started: the caller starts it), or find the one a resend of ``client_id``
    made (Resent).

    Made by ``do_create_conversation``, so the owner's defaults apply to what is left empty
    (``model`` None: the owner's default model; else a pick of the picker, with its
    ``provider_id``); ``attachment_ids``, the files it carries, uploaded for no conversation
    yet. Raises, having written nothing: Invalid for a bad message, prompt
    or model, a LimitError when the owner is over a limit.
    """
    content = validate_content(content, empty_ok=bool(attachment_ids))
    if system_prompt is not None:  # None: the owner's default
        system_prompt = validate_system_prompt(system_prompt)
    storage.counted(owner.pk)
    with transaction.atomic():
        if model is not None:
            model = providers.check_choice(provider_id, model, owner_id=owner.pk, lock=True)
        # One start per user at a time: a double submit finds the first one's rows.
        lock_owner(owner.pk)
        first = (
            Message.objects.filter(
                conversation__owner=owner,
                conversation__deleted_at=None,
                client_id=client_id,
                parent=None,
                role=Message.Role.USER,
            )
            .select_related("conversation")
            .first()
        )
        if first is not None:
            return Resent(first.conversation, first)
        conversation = do_create_conversation(
            owner, system_prompt=system_prompt, provider_id=provider_id, model=model
        )
        # Its answer's start lists it in every tab (conversations._create_answer).
        return do_post_user_message(
            conversation, content, client_id, parent_id=None, attachment_ids=attachment_ids
        )
