"""The business rules: every change to conversations and messages goes through a ``do_*`` here.

Each function opens its own transaction and announces what it changed to the conversation's
group with ``transaction.on_commit``, so a push never describes a row that was rolled back.
They are synchronous (the ORM is); async callers wrap them in ``to_async``.

An answer's row decides its fate: every write to a streaming answer is conditional on its
status still being `streaming`, and liveness is judged by the database's clock, so two
processes (or a paused one and a live one) can never both end the same answer.
"""

import enum
import functools
import logging
import operator
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, Value, When
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Concat, Now
from django.utils import timezone

from streaming import control
from streaming.exceptions import BusyError, ConversationGone, FrameError
from streaming.models import Conversation, Message

logger = logging.getLogger(__name__)

# Longest title made from a first message; the rest is in the message itself.
_TITLE_LENGTH = 60

Status = Message.Status


P = ParamSpec("P")
R = TypeVar("R")


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def db_executor() -> ThreadPoolExecutor:
    """The process's bounded pool of threads for database work (DB_THREADS of them).

    Bounded, so a burst of sockets queues here instead of opening a connection each; long
    lived, so the connection pool (or SQLite's per-thread connection) is reused.
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(settings.DB_THREADS, thread_name_prefix="chatsite-db")
        return _executor


def to_async(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``function`` for async callers: it runs on ``db_executor`` and returns its connection.

    Not thread-sensitive: these functions keep no state in their thread, so many sockets'
    queries run side by side instead of queueing behind the one thread Django would use.
    """
    return database_sync_to_async(  # type: ignore[no-any-return]
        function, thread_sensitive=False, executor=db_executor()
    )


def _stale_before() -> ExpressionWrapper[CombinedExpression]:
    """The database's "now" minus STREAM_ORPHAN_SECONDS: older heartbeats lost their process."""
    return ExpressionWrapper(
        Now() - Value(timedelta(seconds=settings.STREAM_ORPHAN_SECONDS)),
        output_field=DateTimeField(),
    )


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
    #: What to send the model for that answer (``request_messages``).
    history: list[dict[str, str]]


BUSY_MESSAGE = "The assistant is still answering. Wait for it to finish, or stop it first."


def do_post_user_message(
    conversation: Conversation, content: str, client_id: uuid.UUID
) -> PostedMessage:
    """Save a user message and its empty streaming answer, or recognise a resend.

    Raises BusyError while another answer streams in the conversation; the partial unique
    constraint makes that hold across processes without any lock here.
    """
    content = validate_content(content)
    _refresh(conversation)
    existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if existing is not None:
        return PostedMessage(existing, None, [])
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
            event = control.message_event(user_message, conversation.title)
            transaction.on_commit(lambda: control.announce_after_commit(conversation.id, event))
    except IntegrityError:
        # Either a twin of this frame won the race for the client_id, or an answer streams.
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is not None:
            return PostedMessage(existing, None, [])
        raise BusyError(BUSY_MESSAGE) from None
    return PostedMessage(user_message, assistant, request_messages(conversation, before=assistant))


def do_retry(conversation: Conversation, message_id: Any) -> tuple[Message, list[dict[str, str]]]:
    """Start a new answer in place of the conversation's last answer (failed or not).

    The old answer stays in the history as it was; the model is asked again without it.
    Returns the new answer and what to send the model for it.
    """
    _refresh(conversation)
    last = conversation.messages.order_by("-created_at").first()
    if last is None or str(last.pk) != str(message_id) or last.role != Message.Role.ASSISTANT:
        raise FrameError("Only the last answer can be retried.", code="bad_retry")
    if last.status == Status.STREAMING:
        raise BusyError(BUSY_MESSAGE)
    try:
        with transaction.atomic():
            answer = _create_answer(conversation, timezone.now())
    except IntegrityError:
        raise BusyError(BUSY_MESSAGE) from None
    return answer, request_messages(conversation, before=answer)


def _refresh(conversation: Conversation) -> None:
    """Re-read what may have changed since the caller loaded it; ConversationGone if deleted."""
    try:
        conversation.refresh_from_db(fields=["title", "system_prompt", "model"])
    except Conversation.DoesNotExist:
        raise ConversationGone("This conversation was deleted.") from None


def _create_answer(conversation: Conversation, created_at: datetime) -> Message:
    """An empty assistant message in status `streaming`; the constraint allows one."""
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Status.STREAMING,
        model=conversation.model or settings.OPENAI_MODEL,
        heartbeat_at=Now(),
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
    """The `snapshot` frame: stored messages, and the streaming answer's text up to a seq.

    Raises ConversationGone if the conversation was deleted.
    """
    _refresh(conversation)
    messages = list(conversation.messages.all())
    active = next((m for m in messages if m.status == Status.STREAMING), None)
    return {
        "type": "snapshot",
        "title": conversation.title,
        "messages": [control.serialize_message(m) for m in messages],
        "active": (
            {"message_id": str(active.id), "seq": active.seq, "text": active.content}
            if active
            else None
        ),
    }


def digest(conversation_id: Any) -> control.PongEvent:
    """Enough of the stored conversation for a page to spot a frame it missed.

    Raises ConversationGone if the conversation was deleted.
    """
    title = Conversation.objects.filter(pk=conversation_id).values_list("title", flat=True).first()
    if title is None:
        raise ConversationGone("This conversation was deleted.")
    messages = Message.objects.filter(conversation_id=conversation_id)
    last = messages.order_by("-created_at").values("id", "status").first()
    return {
        "type": "chat.pong",
        "title": title,
        "count": messages.count(),
        "last_id": str(last["id"]) if last else None,
        "last_status": last["status"] if last else None,
    }


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


def do_request_stop(conversation_id: Any, message_id: Any = None) -> list[uuid.UUID]:
    """Flag the conversation's streaming answer (or ``message_id``) to stop; return its id.

    The flag is the request that cannot be lost: the answer's process reads it at its next
    checkpoint, even if the faster request over the channel layer never arrives.
    """
    answers = Message.objects.filter(conversation_id=conversation_id, status=Status.STREAMING)
    if message_id is not None:
        try:
            answers = answers.filter(pk=uuid.UUID(str(message_id)))
        except ValueError:
            return []
    ids = list(answers.values_list("pk", flat=True))
    if ids:
        Message.objects.filter(pk__in=ids, status=Status.STREAMING).update(stop_requested=True)
    return ids


INTERRUPTED_MESSAGE = (
    "The server stopped while answering. The text up to that moment is saved; "
    "you can retry the answer."
)


def do_sweep_orphans(*, alive: Iterable[uuid.UUID] = ()) -> int:
    """Mark streaming answers whose heartbeat is stale as `interrupted`; return how many.

    Their process died (or stalled) without finishing them; they keep their last checkpointed
    text. Staleness is judged by the database's clock, and each update repeats the test, so
    a heartbeat written meanwhile wins; a process that comes back finds its row ended and
    stops without a word. Any process may sweep: two sweeps of one message announce it once.
    """
    stale = _stale_before()
    # A row without a heartbeat (written by hand, say) is judged by its last update.
    is_stale = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, updated_at__lt=stale)
    candidates = list(
        Message.objects.filter(is_stale, status=Status.STREAMING)
        .exclude(pk__in=list(alive))
        .values_list("pk", flat=True)
    )
    swept = 0
    for pk in candidates:
        with transaction.atomic():
            updated = Message.objects.filter(is_stale, pk=pk, status=Status.STREAMING).update(
                status=Status.INTERRUPTED,
                error=INTERRUPTED_MESSAGE,
                heartbeat_at=None,
                updated_at=timezone.now(),
            )
            if not updated:
                continue
            swept += 1
            message = Message.objects.get(pk=pk)
            event = control.done_event(message)
            transaction.on_commit(
                functools.partial(control.announce_after_commit, message.conversation_id, event)
            )
    if swept:
        logger.warning("Marked %d orphaned answer(s) interrupted", swept)
    return swept


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
    """Save an answer's ending, then announce it with a ``chat.done`` event; True if saved.

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
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=now)
        event = control.done_event(message)
        transaction.on_commit(lambda: control.announce_after_commit(message.conversation_id, event))
    return True


def do_delete_conversation(conversation: Conversation) -> None:
    """Delete a conversation: its running answer stops (on any process), its tabs are told."""
    with transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).delete()
        conversation_id = conversation.pk
        transaction.on_commit(lambda: _announce_deleted(conversation_id))


def _announce_deleted(conversation_id: uuid.UUID) -> None:
    # The answer would also find its row gone at its next checkpoint; this is the fast path.
    async_to_sync(control.ask_answer)(control.stop_request(conversation_id, None, "deleted"))
    control.announce_after_commit(conversation_id, control.deleted_event())
