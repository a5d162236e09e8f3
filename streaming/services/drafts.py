"""A conversation is saved only when its first message is sent.

"New chat" opens a draft page with no row behind it; its first message creates the
conversation, that message and its streaming answer in one transaction, so a refusal (a bad
message or prompt, a limit) leaves nothing at all, and a resend of the same message (same
client_id) finds the conversation it made rather than making a second one.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from streaming.models import Conversation, Message
from streaming.services import providers
from streaming.services.conversations import (
    PostedMessage,
    do_create_conversation,
    do_post_user_message,
    validate_content,
    validate_system_prompt,
)
from streaming.services.listing import announce_listing
from streaming.services.quotas import lock_owner


@dataclass(frozen=True)
class Started:
    """What ``do_start_conversation`` did."""

    conversation: Conversation
    #: The first message and its answer to generate (None for a resend: already started).
    posted: PostedMessage


def do_start_conversation(
    owner: User,
    content: Any,
    client_id: uuid.UUID,
    *,
    system_prompt: Any = None,
    provider_id: Any = None,
    model: Any = None,
) -> Started:
    """Create the conversation with its first message and that message's answer, in status
    `streaming` (the caller starts it), or find the one a resend of ``client_id`` made.

    Made by ``do_create_conversation``, so the owner's defaults apply to what is left empty
    (``model`` None: the owner's default model; else a pick of the picker, with its
    ``provider_id``). Raises, having written nothing: Invalid for a bad message, prompt
    or model, a LimitError when the owner is over a limit.
    """
    content = validate_content(content)
    if system_prompt is not None:  # None: the owner's default
        system_prompt = validate_system_prompt(system_prompt)
    with transaction.atomic():
        if model is not None:
            model = providers.check_choice(provider_id, model, lock=True)
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
            return Started(first.conversation, PostedMessage(first, None, []))
        conversation = do_create_conversation(
            owner, system_prompt=system_prompt, provider_id=provider_id, model=model
        )
        posted = do_post_user_message(conversation, content, client_id, parent_id=None)
        announce_listing(conversation.pk)
    return Started(conversation, posted)
