"""Continue: an answer cut off at its length limit asks the model for more of itself.

The answer goes back to `streaming`, the same row: the model is sent its branch with the
answer last, as the assistant's message to go on from (``context.continuation``), and what
it writes is appended, numbered on from the answer's `seq`, so the answer streams, resumes,
stops and ends like any other (streaming/answer.py). A Regenerate still makes a new
version; Continue never does.

Each continuation is a row of its own (``models.Continuation``): the daily budget and the
limit of answers a minute count it as an answer started when it started
(services/quotas.py), and the answer's usage grows by its own when it ends (``ended``).

An answer never grows past STREAM_MAX_ANSWER_CHARS: one that has reached it is not
continuable (``Message.continuable``), and a continuation is cut there like any answer.
"""

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery, Value
from django.db.models.functions import Greatest, Length, Now

from streaming.exceptions import BusyError, ErrorCode, Invalid
from streaming.models import Continuation, Conversation, Message
from streaming.services import context, conversations, events, listing, providers, storage

Status = Message.Status

NOT_CUT_OFF = "Only an answer cut off at its length limit can be continued."
FOLLOWED = (
    "This answer cannot be continued: a message follows it, which answered it as it was. "
    "Regenerate it instead."
)


def do_continue(conversation: Conversation, message_id: Any) -> conversations.Started:
    """Start continuing the answer ``message_id``, the same row, from its stored text.

    Invalid (``bad_continue``), having written nothing, unless it is an answer of this
    conversation cut off by the model's length limit (``Message.continuable``) that no
    message follows; BusyError while an answer streams; the limits, the model's
    availability and the storage room as for any new answer. The model is the one chosen
    now (as for Regenerate), and the answer becomes the end of the branch shown.
    """
    conversations.refresh(conversation)
    storage.counted(conversation.owner_id)
    try:
        with transaction.atomic():
            now = conversations.may_answer(conversation)
            answer = _cut_off_answer(conversation, message_id)
            provider = providers.resolve(conversation)
            history = context.continuation(conversation, answer, sees=provider.vision)
            Continuation.objects.create(
                message=answer,
                started_at=now,
                base_chars=len(answer.content),
                base_prompt_tokens=answer.prompt_tokens,
                base_completion_tokens=answer.completion_tokens,
                prompt_estimate=context.estimate(history),
            )
            reopened = {
                "status": Status.STREAMING,
                "error": "",
                # The stored text is delta `seq`; the continuation's deltas follow it.
                "seq": answer.seq or 1,
                # A stop of the answer's last part must not stop this one.
                "stop_requested": False,
                "provider_id": provider.provider_id,
                "provider_name": provider.name,
                "model": provider.model,
            }
            Message.objects.filter(pk=answer.pk).update(
                **reopened, heartbeat_at=Now(), updated_at=now
            )
            for field, value in reopened.items():
                setattr(answer, field, value)
            # A streaming answer counts against the storage quota once it ends, whole.
            storage.add(conversation.owner_id, -len(answer.content))
            Conversation.objects.filter(pk=conversation.pk).update(updated_at=now, leaf=answer)
            events.on_commit(listing.changed(conversation.pk))  # answering now
    except IntegrityError:
        raise BusyError(conversations.BUSY_MESSAGE) from None
    return conversations.Started(conversation, answer, history, provider)


def _cut_off_answer(conversation: Conversation, message_id: Any) -> Message:
    """The answer ``message_id`` of the conversation, locked, if it may be continued; else
    Invalid saying why."""
    try:
        answer = (
            Message.objects.select_for_update()
            .filter(pk=uuid.UUID(str(message_id)), conversation=conversation)
            .first()
        )
    except (ValueError, ValidationError):
        answer = None
    if answer is None or answer.role != Message.Role.ASSISTANT:
        raise Invalid(
            "Only an answer of this conversation can be continued.", code=ErrorCode.BAD_CONTINUE
        )
    if not answer.continuable:
        full = answer.finish_reason == "length" and not answer.imported and answer.content
        raise Invalid(capped_notice() if full else NOT_CUT_OFF, code=ErrorCode.BAD_CONTINUE)
    if Message.objects.filter(parent=answer).exists():
        raise Invalid(FOLLOWED, code=ErrorCode.BAD_CONTINUE)
    return answer


def deltas_so_far(answer: Message) -> list[str]:
    """The text an answer holds as it starts to stream, as the deltas it was sent in: none
    for a new answer; for a continued one its stored text as delta `seq`, the ones before
    it empty, so that the next delta is `seq` + 1 and their join is the whole text."""
    if not answer.seq:
        return []
    return [""] * (answer.seq - 1) + [answer.content]


def cut_notice(finish_reason: str) -> str:
    """Why a finished answer stops where it does, as the page says it: "" unless the model's
    length limit cut it off."""
    if finish_reason != "length":
        return ""
    limit = settings.OPENAI_MAX_TOKENS
    which = f"the length limit of one reply ({limit:,} tokens)" if limit else "its length limit"
    return f"The answer reached {which} and stopped here."


def capped_notice() -> str:
    """What an answer cut at STREAM_MAX_ANSWER_CHARS says: nothing more of it can be kept."""
    limit = settings.STREAM_MAX_ANSWER_CHARS
    return (
        f"The answer reached the longest this site keeps ({limit:,} characters) and was cut "
        "there: it cannot be continued."
    )


def ended(answer: Message) -> None:
    """In the transaction that saved ``answer``'s ending (its row and the object hold the
    ending's own usage): if the ending was a continuation's, record what it added and cost,
    and make the answer's token counts its earlier ones and the continuation's together."""
    continued = Continuation.objects.filter(message_id=answer.pk, chars__isnull=True).first()
    if continued is None:
        return
    continued.chars = max(0, len(answer.content) - continued.base_chars)
    continued.prompt_tokens = answer.prompt_tokens
    continued.completion_tokens = answer.completion_tokens
    continued.save(update_fields=["chars", "prompt_tokens", "completion_tokens"])
    answer.prompt_tokens = _plus(continued.base_prompt_tokens, continued.prompt_tokens)
    answer.completion_tokens = _plus(continued.base_completion_tokens, continued.completion_tokens)
    Message.objects.filter(pk=answer.pk).update(
        prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens
    )


def swept(answer_ids: Iterable[uuid.UUID]) -> None:
    """In the sweep's transaction: the continuations of the answers it ended added what their
    last checkpoint holds, and no usage was reported for them."""
    length = Message.objects.filter(pk=OuterRef("message_id")).values(n=Length("content"))[:1]
    Continuation.objects.filter(message_id__in=list(answer_ids), chars__isnull=True).update(
        chars=Greatest(Subquery(length) - F("base_chars"), Value(0))
    )


def _plus(earlier: int | None, added: int | None) -> int | None:
    """Two token counts together; None while neither was reported."""
    if earlier is None and added is None:
        return None
    return (earlier or 0) + (added or 0)
