"""A short title asked of the model after a conversation's first answer (AUTO_TITLE).

The title made from the first message is replaced only if it is still that one: a rename
by the user, before or while the model is asked, always wins.
"""

from typing import Any

from django.conf import settings
from django.db import transaction

from streaming import control, layer
from streaming.exceptions import ChatError
from streaming.models import Conversation, Message
from streaming.services import events, listing, providers

TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below. "
    "Reply with the title alone, without quotes."
)
# The most tokens the title's answer may have, and the most of the exchange sent for it.
TITLE_MAX_TOKENS = 30
_EXCERPT_CHARS = 2000
# The longest title made from a first message or kept from the model; the rest is in the
# message itself.
_TITLE_CHARS = 60


def title_from(content: str) -> str:
    """The title a conversation gets from its first message: its words, cut short."""
    return _short(" ".join(content.split()))


def auto_title_request(
    answer: Message,
) -> tuple[str, list[dict[str, str]], providers.ProviderConfig] | None:
    """For an answer that just ended: the conversation's title now, what to ask the model
    for a better one, and where (the conversation's model); None when none should be asked
    (AUTO_TITLE off, not the first answer of the conversation, not complete, the title is
    the user's own, or the model can no longer be asked)."""
    if not settings.AUTO_TITLE or answer.status != Message.Status.COMPLETE or not answer.content:
        return None
    if answer.parent_id is None:
        return None
    question = Message.objects.filter(pk=answer.parent_id, parent=None).first()
    answers = Message.objects.filter(
        conversation_id=answer.conversation_id, role=Message.Role.ASSISTANT
    )
    if question is None or answers.count() != 1:
        return None
    conversation = Conversation.objects.filter(pk=answer.conversation_id, deleted_at=None).first()
    if conversation is None or conversation.title != title_from(question.content):
        return None
    try:
        provider = providers.resolve(conversation)
    except ChatError:
        return None  # its model is no longer offered, or its key cannot be read
    exchange = f"{question.content[:_EXCERPT_CHARS]}\n\n{answer.content[:_EXCERPT_CHARS]}"
    prompt = [
        {"role": "system", "content": TITLE_PROMPT},
        {"role": "user", "content": exchange},
    ]
    return conversation.title, prompt, provider


def do_auto_title(conversation_id: Any, made_from: str, text: str) -> str | None:
    """Give the conversation the model's title ``text`` if its title is still ``made_from``
    (the one its first message made); every tab is told. The title saved, or None."""
    title = _clean(text)
    if not title:
        return None
    with transaction.atomic():
        renamed = Conversation.objects.filter(
            pk=conversation_id, title=made_from, deleted_at=None
        ).update(title=title)
        if not renamed:
            return None  # the user renamed it meanwhile, or deleted it
        event = layer.to_conversation(conversation_id, control.title_event(title))
        events.on_commit(event, listing.changed(conversation_id))
    return title


def _clean(text: str) -> str:
    """The model's title: its first line, without quotes or a final full stop, cut short."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = " ".join(line.split()).strip("\"'“”*#").rstrip(".").strip()
    if "\x00" in line:
        return ""
    return _short(line)


def _short(line: str) -> str:
    return line if len(line) <= _TITLE_CHARS else line[: _TITLE_CHARS - 1].rstrip() + "…"
