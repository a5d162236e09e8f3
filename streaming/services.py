"""The business rules: every change to conversations and messages goes through a ``do_*`` here.

Each function opens its own transaction and announces what it changed to the conversation's
group with ``transaction.on_commit``, so a push never describes a row that was rolled back.
They are synchronous (the ORM is); async callers wrap them in ``to_async``.
"""

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from streaming.exceptions import BusyError, FrameError
from streaming.models import Conversation, Message, group_name

logger = logging.getLogger(__name__)

# Longest title made from a first message; the rest is in the message itself.
_TITLE_LENGTH = 60

Status = Message.Status


P = ParamSpec("P")
R = TypeVar("R")


def to_async(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``function`` for async callers: it runs in a worker thread that closes its connection.

    Not thread-sensitive: these functions keep no state in their thread, so many sockets'
    queries run side by side (each on its own pooled connection) instead of queueing
    behind the one thread Django would otherwise use.
    """
    return database_sync_to_async(function, thread_sensitive=False)  # type: ignore[no-any-return]


def serialize_message(message: Message) -> dict[str, Any]:
    """The JSON shape of a message in every frame and in the page's initial data."""
    return {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "finish_reason": message.finish_reason,
        "usage": message.usage,
        "error": message.error,
        "client_id": str(message.client_id) if message.client_id else None,
        "created_at": message.created_at.isoformat(),
    }


def announce(group: str, event: dict[str, Any]) -> None:
    """Send an event to a conversation's group from sync code (after commit)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:
        # The row is committed and is the truth; sockets re-read it when they reconnect.
        logger.exception("Could not announce %s to %s", event.get("type"), group)


def get_conversation_for(
    user: AbstractBaseUser | AnonymousUser, conversation_id: Any
) -> Conversation | None:
    """The conversation if it exists and belongs to ``user``, else None (never says which)."""
    if not user.is_authenticated:
        return None
    try:
        return Conversation.objects.get(pk=conversation_id, owner_id=user.pk)
    except (Conversation.DoesNotExist, ValueError, ValidationError):
        return None


def get_message_in(conversation: Conversation, message_id: Any) -> Message | None:
    """The message if it belongs to ``conversation``, else None."""
    try:
        return conversation.messages.get(pk=message_id)
    except (Message.DoesNotExist, ValueError, ValidationError):
        return None


def do_create_conversation(
    owner: User, *, title: str = "", system_prompt: str = "", model: str = ""
) -> Conversation:
    """Start an empty conversation for ``owner``."""
    return Conversation.objects.create(
        owner=owner, title=title.strip()[:200], system_prompt=system_prompt, model=model.strip()
    )


def validate_content(content: Any) -> str:
    """The text of a user message, or a FrameError a person understands."""
    if not isinstance(content, str) or not content.strip():
        raise FrameError("Write a message before sending.", code="empty_content")
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise FrameError(
            f"The message is {len(content)} characters long; the limit is "
            f"{settings.MAX_MESSAGE_CHARS}.",
            code="content_too_long",
        )
    return content


@dataclass(frozen=True)
class PostedMessage:
    """What ``do_post_user_message`` did."""

    user_message: Message
    #: The answer to generate, in status `streaming`; None for a repeated client_id.
    assistant_message: Message | None


BUSY_MESSAGE = "The assistant is still answering. Wait for it to finish, or stop it first."


def do_post_user_message(
    conversation: Conversation, content: str, client_id: uuid.UUID
) -> PostedMessage:
    """Save a user message and its empty streaming answer, or recognise a resend.

    Raises BusyError while another answer streams in the conversation; the partial unique
    constraint makes that hold across processes without any lock here.
    """
    content = validate_content(content)
    # The caller's copy may be old: the title or the model may have changed since.
    conversation.refresh_from_db(fields=["title", "system_prompt", "model"])
    existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if existing is not None:
        return PostedMessage(existing, None)
    now = timezone.now()
    try:
        with transaction.atomic():
            user_message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.USER,
                content=content,
                client_id=client_id,
                created_at=now,
            )
            # One microsecond later, so history order never depends on clock resolution.
            assistant = _create_answer(conversation, now + timedelta(microseconds=1))
            if not conversation.title:
                conversation.title = _title_from(content)
                Conversation.objects.filter(pk=conversation.pk, title="").update(
                    title=conversation.title
                )
            event = {
                "type": "chat.message",
                "message": serialize_message(user_message),
                "title": conversation.title,
            }
            transaction.on_commit(lambda: announce(conversation.group_name, event))
    except IntegrityError:
        # Either a twin of this frame won the race for the client_id, or an answer streams.
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is not None:
            return PostedMessage(existing, None)
        raise BusyError(BUSY_MESSAGE) from None
    return PostedMessage(user_message, assistant)


def do_retry(conversation: Conversation, message_id: Any) -> Message:
    """Start a new answer in place of the conversation's last answer (failed or not).

    The old answer stays in the history as it was; the model is asked again without it.
    """
    conversation.refresh_from_db(fields=["title", "system_prompt", "model"])
    last = conversation.messages.order_by("-created_at").first()
    if last is None or str(last.pk) != str(message_id) or last.role != Message.Role.ASSISTANT:
        raise FrameError("Only the last answer can be retried.", code="bad_retry")
    if last.status == Status.STREAMING:
        raise BusyError(BUSY_MESSAGE)
    try:
        with transaction.atomic():
            return _create_answer(conversation, timezone.now())
    except IntegrityError:
        raise BusyError(BUSY_MESSAGE) from None


def _create_answer(conversation: Conversation, created_at: datetime) -> Message:
    """An empty assistant message in status `streaming`; the constraint allows one."""
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Status.STREAMING,
        model=conversation.model or settings.OPENAI_MODEL,
        heartbeat_at=created_at,
        created_at=created_at,
    )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=created_at)
    return answer


def _title_from(content: str) -> str:
    first_line = " ".join(content.split())
    if len(first_line) <= _TITLE_LENGTH:
        return first_line
    return first_line[: _TITLE_LENGTH - 1].rstrip() + "…"


def request_messages(conversation: Conversation, *, before: Message) -> list[dict[str, str]]:
    """The messages to send the model for the answer ``before``: system prompt first.

    An answer that was retried (another answer follows it directly) and an answer that
    failed with no text are left out; a partial answer stays, since the user saw it.
    """
    messages: list[dict[str, str]] = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    history = list(conversation.messages.filter(created_at__lt=before.created_at))
    for message, following in zip(history, [*history[1:], before], strict=True):
        if message.role == Message.Role.ASSISTANT and (
            not message.content or following.role == Message.Role.ASSISTANT
        ):
            continue
        messages.append({"role": message.role, "content": message.content})
    return messages


def snapshot(conversation: Conversation) -> dict[str, Any]:
    """The `snapshot` frame: stored messages, and the streaming answer's text up to a seq."""
    messages = list(conversation.messages.all())
    active = next((m for m in messages if m.status == Status.STREAMING), None)
    return {
        "type": "snapshot",
        "title": conversation.title,
        "messages": [serialize_message(m) for m in messages],
        "active": (
            {"message_id": str(active.id), "seq": active.seq, "text": active.content}
            if active
            else None
        ),
    }


def do_checkpoint(message_id: uuid.UUID, content: str, seq: int) -> bool:
    """Save the text up to delta ``seq`` and a heartbeat; False if no longer streaming."""
    now = timezone.now()
    updated = Message.objects.filter(pk=message_id, status=Status.STREAMING).update(
        content=content, seq=seq, heartbeat_at=now, updated_at=now
    )
    return updated == 1


INTERRUPTED_MESSAGE = (
    "The server stopped while answering. The text up to that moment is saved; "
    "you can retry the answer."
)


def do_sweep_orphans(*, alive: Iterable[uuid.UUID] = ()) -> int:
    """Mark streaming answers whose heartbeat is stale as `interrupted`; return how many.

    Their process died without finishing them; they keep their last checkpointed text.
    Any process may run this: the status update is conditional, so two sweeps of the same
    message mark and announce it once.
    """
    stale = timezone.now() - timedelta(seconds=settings.STREAM_ORPHAN_SECONDS)
    # A row without a heartbeat (written by hand, say) is judged by its last update.
    beat_is_stale = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, updated_at__lt=stale)
    candidates = Message.objects.filter(beat_is_stale, status=Status.STREAMING).exclude(
        pk__in=list(alive)
    )
    swept = 0
    for message in candidates:
        with transaction.atomic():
            updated = Message.objects.filter(pk=message.pk, status=Status.STREAMING).update(
                status=Status.INTERRUPTED,
                error=INTERRUPTED_MESSAGE,
                heartbeat_at=None,
                updated_at=timezone.now(),
            )
            if not updated:
                continue
            swept += 1
            message.status, message.error = Status.INTERRUPTED, INTERRUPTED_MESSAGE
            group, event = group_name(message.conversation_id), done_event(message)
            transaction.on_commit(functools.partial(announce, group, event))
    if swept:
        logger.warning("Marked %d orphaned answer(s) interrupted", swept)
    return swept


@dataclass(frozen=True)
class Outcome:
    """How one answer ended, as it is saved and announced."""

    status: str
    content: str
    finish_reason: str = ""
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str = ""


def do_finish(message: Message, outcome: Outcome) -> Message:
    """Save an answer's ending once, then announce it with a ``chat.done`` event.

    A conversation deleted mid-answer has nothing left to save; that is not an error.
    """
    ending = {
        "status": outcome.status,
        "content": outcome.content,
        "finish_reason": outcome.finish_reason,
        "model": outcome.model or message.model,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "error": outcome.error,
        "heartbeat_at": None,
    }
    for field, value in ending.items():
        setattr(message, field, value)
    now = timezone.now()
    with transaction.atomic():
        saved = Message.objects.filter(pk=message.pk).update(**ending, updated_at=now)
        if not saved:
            logger.info("Answer %s ended after its conversation was deleted", message.pk)
            return message
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=now)
        group = group_name(message.conversation_id)
        transaction.on_commit(lambda: announce(group, done_event(message)))
    return message


def done_event(message: Message) -> dict[str, Any]:
    """The ``chat.done`` group event for a finished answer."""
    return {
        "type": "chat.done",
        "message_id": str(message.id),
        "status": message.status,
        "finish_reason": message.finish_reason,
        "usage": message.usage,
        "error": message.error,
        "message": serialize_message(message),
    }
