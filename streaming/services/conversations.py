"""Conversations and their messages: who may see them, posting, retrying, versions, settings."""

import enum
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.utils import timezone

from streaming import control, layer
from streaming.exceptions import BusyError, ConversationGone, ErrorCode, Invalid
from streaming.models import Conversation, Message
from streaming.services import (
    attachments,
    branch,
    context,
    events,
    listing,
    providers,
    stops,
    storage,
)
from streaming.services.quotas import check_new_answer, lock_owner, standing
from streaming.services.titles import title_from
from streaming.services.user_settings import default_model, default_system_prompt
from streaming.text import (
    TITLE_MAX_CHARS,
    check_storable,
    validate_content,
    validate_system_prompt,
    validate_title,
)

logger = logging.getLogger(__name__)

Status = Message.Status


def get_conversation_for(
    user: AbstractBaseUser | AnonymousUser, conversation_id: Any
) -> Conversation | None:
    """The conversation if it exists and belongs to ``user``, else None (never says which)."""
    if not user.is_authenticated:
        return None
    try:
        return Conversation.objects.get(pk=conversation_id, owner_id=user.pk, deleted_at=None)
    except (Conversation.DoesNotExist, ValueError, ValidationError):
        return None


def get_message_in(conversation: Conversation, message_id: Any) -> Message | None:
    """The message if it belongs to ``conversation``, else None."""
    try:
        return conversation.messages.get(pk=message_id)
    except (Message.DoesNotExist, ValueError, ValidationError):
        return None


def do_create_conversation(
    owner: User,
    *,
    title: str = "",
    system_prompt: str | None = None,
    provider_id: int | None = None,
    model: str | None = None,
) -> Conversation:
    """Start an empty conversation for ``owner``; a ChatError if the prompt cannot be stored.

    ``system_prompt`` None gives it the owner's default from the settings page ("": none),
    and ``model`` None the owner's default model (``provider_id`` goes with ``model``).
    """
    if system_prompt is None:
        system_prompt = default_system_prompt(owner.pk)
    if model is None:
        provider_id, model = default_model(owner.pk)
    check_storable(system_prompt, what="The system prompt")
    return Conversation.objects.create(
        owner=owner,
        title=title.strip()[:TITLE_MAX_CHARS],
        system_prompt=system_prompt,
        provider_id=provider_id,
        model=model.strip(),
    )


@dataclass(frozen=True)
class Started:
    """A new answer was saved, in status `streaming`: the caller generates it
    (``runtime.begin``, the one way an answer starts)."""

    conversation: Conversation
    #: The answer's row, the end of the branch shown now.
    answer: Message
    #: What to send the model for it (``context.history``: the rule of ``request_messages``).
    history: context.Request
    #: Where to ask for it (``providers.resolve``).
    provider: providers.ProviderConfig


@dataclass(frozen=True)
class Resent:
    """A user message sent again (the same client_id): the first send saved it and started
    its answer, which streams or has ended; nothing new starts."""

    conversation: Conversation
    user_message: Message


#: What a service that posts a user message did.
Posted = Started | Resent


BUSY_MESSAGE = "The assistant is still answering. Wait for it to finish, or stop it first."


class _BranchEnd(enum.Enum):
    BRANCH_END = "the end of the branch shown"


#: ``do_post_user_message``'s default: the message follows the last one of the branch shown.
BRANCH_END = _BranchEnd.BRANCH_END
#: What a new user message follows: an answer's id, None (the first turn), or BRANCH_END.
Follows = uuid.UUID | _BranchEnd | None


def do_post_user_message(
    conversation: Conversation,
    content: str,
    client_id: uuid.UUID,
    parent_id: Follows = BRANCH_END,
    attachment_ids: Any = None,
) -> Posted:
    """Save a user message after ``parent_id`` and its empty streaming answer (Started), or
    recognise a resend (Resent).

    ``parent_id`` is the message it follows, an answer (None: it starts the conversation; an
    edit of a message follows what that message followed). The new answer becomes the end of
    the branch shown. Raises BusyError while another answer streams in the conversation (the
    partial unique constraint makes that hold across processes), Invalid for a parent that
    is not a message of this conversation, and a LimitError, having written nothing, when
    the user is over a limit (``quotas``). ``attachment_ids`` name the files it carries
    (``attachments.for_message``); with them, it may have no text.
    """
    content = validate_content(content, empty_ok=bool(attachment_ids))
    refresh(conversation)
    existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if existing is not None:
        return Resent(conversation, existing)
    storage.counted(conversation.owner_id)
    try:
        with transaction.atomic():
            now = may_answer(conversation, adding=len(content))
            # Read again under the lock: a switch on another socket may have moved it.
            conversation.leaf_id = _leaf_id(conversation)
            files = attachments.for_message(conversation, attachment_ids)
            user_message = Message.objects.create(
                conversation=conversation,
                parent_id=_parent_for(conversation, parent_id),
                role=Message.Role.USER,
                content=content,
                client_id=client_id,
                created_at=now,
                **attachments.fields_for(files),
            )
            attachments.attach(user_message, files)
            storage.add(conversation.owner_id, len(content))
            # One microsecond later, so the order of writing never depends on clock resolution.
            started = _start_answer(
                conversation, user_message.pk, now + timedelta(microseconds=1), stop_key=client_id
            )
            if not conversation.title:
                conversation.title = title_from(content or files[0].name)
                Conversation.objects.filter(pk=conversation.pk, title="").update(
                    title=conversation.title
                )
            event = control.message_event(user_message, conversation.title)
            events.on_commit(layer.to_conversation(conversation.id, event))
    except IntegrityError:
        # Either a twin of this frame won the race for the client_id, or an answer streams.
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is not None:
            return Resent(conversation, existing)
        raise BusyError(BUSY_MESSAGE) from None
    return started


def _parent_for(conversation: Conversation, parent_id: Follows) -> uuid.UUID | None:
    """The id of the message a new user message follows (None: it starts the conversation);
    Invalid for one it cannot follow."""
    if parent_id is BRANCH_END:
        return branch.leaf(conversation.pk, conversation.leaf_id)
    if parent_id is None:
        return None
    role = conversation.messages.filter(pk=parent_id).values_list("role", flat=True).first()
    if role is None:
        raise Invalid(
            "The message to follow is not in this conversation.", code=ErrorCode.BAD_PARENT
        )
    # An answer; or a user message that nothing follows yet (history written by hand).
    if role != Message.Role.ASSISTANT and conversation.messages.filter(parent=parent_id).exists():
        raise Invalid("A message can only follow an answer.", code=ErrorCode.BAD_PARENT)
    return parent_id


def _leaf_id(conversation: Conversation) -> uuid.UUID | None:
    leaf_id: uuid.UUID | None = (
        Conversation.objects.filter(pk=conversation.pk).values_list("leaf_id", flat=True).first()
    )
    return leaf_id


def do_regenerate(
    conversation: Conversation, message_id: Any, client_id: uuid.UUID | None = None
) -> Started:
    """Start a new version of the answer ``message_id``: any answer, failed or not.

    The old answer stays as the other version; the model is asked again with the branch up
    to the user message it answered (of the model chosen now), and the new answer becomes
    the end of the branch shown. ``client_id``, the page's id for the retry, is the answer's.
    """
    refresh(conversation)
    storage.counted(conversation.owner_id)
    try:
        with transaction.atomic():
            question = _question_of(conversation, uuid_or_none(message_id))
            if question is None:
                raise Invalid(
                    "Only an answer of this conversation can be regenerated.",
                    code=ErrorCode.BAD_RETRY,
                )
            now = may_answer(conversation)
            # A stop names a retry by its own client_id, else by its question's.
            asked = Message.objects.filter(pk=question).values_list("client_id", flat=True)
            started = _start_answer(
                conversation,
                question,
                now,
                client_id=client_id,
                stop_key=client_id or asked.first(),
            )
    except IntegrityError:
        raise BusyError(BUSY_MESSAGE) from None
    return started


def _question_of(conversation: Conversation, answer_id: uuid.UUID | None) -> uuid.UUID | None:
    """The user message that the answer ``answer_id`` answers, both of the conversation (its
    id); None for anything else."""
    if answer_id is None:
        return None
    question: uuid.UUID | None = (
        conversation.messages.filter(
            pk=answer_id, role=Message.Role.ASSISTANT, parent__conversation=conversation
        )
        .values_list("parent_id", flat=True)
        .first()
    )
    return question


def do_switch_branch(conversation: Conversation, message_id: Any) -> uuid.UUID:
    """Show the branch through ``message_id`` (a version picked in the switcher, or the
    message a search found).

    The branch shown ends at the newest message below it (found by the database, however
    long the conversation), and every tab is told. Returns that last message's id.
    """
    refresh(conversation)
    with transaction.atomic():
        # One change of the branch shown at a time per user, as for new answers (may_answer),
        # so a switch and a new message on two sockets cannot interleave.
        lock_owner(conversation.owner_id)
        found = uuid_or_none(message_id)
        leaf_id = branch.descend(conversation.pk, found) if found is not None else None
        if leaf_id is None:
            raise Invalid("No such message in this conversation.", code=ErrorCode.BAD_SWITCH)
        Conversation.objects.filter(pk=conversation.pk).update(leaf_id=leaf_id)
        events.on_commit(layer.to_conversation(conversation.id, control.branch_event(leaf_id)))
    return leaf_id


def do_set_system_prompt(conversation: Conversation, system_prompt: Any) -> str:
    """Change the conversation's system prompt: the model gets it from the next answer on
    (one streaming keeps what it was sent), and every tab is told. Returns it as saved."""
    prompt = validate_system_prompt(system_prompt)
    event = control.system_prompt_event(prompt)
    _save_setting(
        conversation, [layer.to_conversation(conversation.id, event)], system_prompt=prompt
    )
    return prompt


def do_rename(conversation: Conversation, new_title: Any) -> str:
    """Give the conversation a title of the user's own (in place of the one its first
    message made); every tab is told. Returns it as saved, without outer white space."""
    title = validate_title(new_title)
    event = layer.to_conversation(conversation.id, control.title_event(title))
    _save_setting(conversation, [event, listing.changed(conversation.id)], title=title)
    return title


def _save_setting(
    conversation: Conversation, announced: list[events.Queued], **fields: str
) -> None:
    """Write ``fields`` of the conversation, and queue what every tab is told of it."""
    with transaction.atomic():
        if not Conversation.objects.filter(pk=conversation.pk, deleted_at=None).update(**fields):
            raise ConversationGone("This conversation was deleted.")
        for name, value in fields.items():
            setattr(conversation, name, value)
        events.on_commit(*announced)


def uuid_or_none(value: Any) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it does not spell one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def may_answer(conversation: Conversation, *, adding: int = 0) -> datetime:
    """In the transaction about to start an answer: raise unless it may start; its time.

    ``adding``: the characters of the user message that comes with it, which must fit the
    owner's storage quota (with none, the quota must not be full: the answer adds to it).
    """
    lock_owner(conversation.owner_id)
    # Under the lock a delete (or a purge) takes too: one that came after the caller's
    # refresh is seen.
    check_idle(conversation)
    now = timezone.now()
    limits = standing(conversation.owner_id)
    check_new_answer(conversation.owner_id, now, limits)
    storage.check_room(conversation.owner_id, adding, limits)
    return now


def check_idle(conversation: Conversation) -> None:
    """ConversationGone if it was deleted, BusyError while an answer of it streams: one
    query."""
    busy = (
        Conversation.objects.filter(pk=conversation.pk, deleted_at__isnull=True)
        .values_list(listing.answering(), flat=True)
        .first()
    )
    if busy is None:
        raise ConversationGone("This conversation was deleted.")
    if busy:
        raise BusyError(BUSY_MESSAGE)


def refresh(conversation: Conversation) -> None:
    """Re-read what may have changed since the caller loaded it; ConversationGone if deleted."""
    try:
        conversation.refresh_from_db(
            fields=["title", "system_prompt", "provider", "model", "deleted_at"]
        )
    except Conversation.DoesNotExist:
        raise ConversationGone("This conversation was deleted.") from None
    if conversation.deleted_at is not None:
        raise ConversationGone("This conversation was deleted.")


def _start_answer(
    conversation: Conversation,
    question: uuid.UUID,
    created_at: datetime,
    *,
    client_id: uuid.UUID | None = None,
    stop_key: uuid.UUID | None = None,
) -> Started:
    """An empty assistant message in status `streaming` answering the user message
    ``question`` (its id), made the end of the branch shown (the constraint allows one
    streaming), and where to ask for it.
    A stop that named it before it was saved, by what the page sent for it (``stop_key``:
    a retry's ``client_id``, else its question's), is used up: it is saved stopped, and its
    process ends it without asking the model, at no cost to the daily budget (stops.py).

    What the model will be sent for it is read now (``context.history``): its estimated size
    is kept, for the daily budget of an answer whose provider reports no usage (stopped,
    failed). The answer records its provider and model now; ModelUnavailable, before
    anything is written, when the conversation's model is no longer offered, KeyUnreadable
    when its provider's key cannot be decrypted, Invalid (``no_vision``) when the question
    carries an image and the model does not see.
    """
    provider = providers.resolve(conversation)
    if not provider.vision and attachments.has_images(question):
        raise attachments.refuse_unseen(provider.model)
    history = context.history(conversation, question, sees=provider.vision)
    stopped = stops.take(conversation.pk, stop_key)
    answer = Message.objects.create(
        conversation=conversation,
        parent_id=question,
        role=Message.Role.ASSISTANT,
        status=Status.STREAMING,
        provider_id=provider.provider_id,
        provider_name=provider.name,
        model=provider.model,
        heartbeat_at=Now(),
        created_at=created_at,
        client_id=client_id,
        stop_requested=stopped,
        prompt_estimate=None if stopped else context.estimate(history),
        # What the reader should know of what the model is sent (a document cut to fit):
        # the answer says it, with its ending's own words if it has any (answer.py).
        error=history.notice,
    )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=created_at, leaf=answer)
    events.on_commit(listing.changed(conversation.pk))  # answering now, and active now
    return Started(conversation, answer, history, provider)
