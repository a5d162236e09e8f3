"""How an answer ends: the status it ends with, the one write of its ending, and the line
logged about it.

The ending is written once, and only while the row is still `streaming`
(``services.answers.do_finish``, which announces `done`).
"""

import logging

from django.conf import settings

from streaming.exceptions import ChatError
from streaming.logs import AnswerTimings, error_fields
from streaming.models import Message
from streaming.services import answers
from streaming.services.database import to_async

logger = logging.getLogger(__name__)

Status = Message.Status

SERVER_ERROR = "Something went wrong on the server. The text so far is saved."
_CAPPED = "The answer reached the longest this site keeps ({limit} characters) and was cut there."


def status(
    finished: bool, capped: bool, stop: tuple[str, str] | None, error: BaseException | None
) -> tuple[str, str]:
    """The status and error to save: a stream that ``finished`` is complete whoever asked to
    stop; else the ``stop`` asked for, else the reader's ``error``."""
    if finished:
        if capped:
            return Status.COMPLETE, _CAPPED.format(limit=settings.STREAM_MAX_ANSWER_CHARS)
        return Status.COMPLETE, ""
    if stop is not None:
        return stop
    if isinstance(error, ChatError):
        return Status.ERROR, error.message
    return Status.ERROR, SERVER_ERROR


async def save(message: Message, outcome: answers.Outcome) -> str | None:
    """Write ``outcome`` as the answer's ending (and announce it); return the status saved,
    or None when the row was no longer `streaming` (ended elsewhere, deleted) or the write
    failed (logged; the sweep ends the row then)."""
    try:
        # Its `done`, and every list's news that it no longer answers, are sent before
        # this returns (services/events.py).
        return outcome.status if await to_async(answers.do_finish)(message, outcome) else None
    except Exception:
        # The row stays `streaming` with its last checkpoint; the sweep will end it.
        logger.exception("Could not save the end of answer %s", message.id)
        return None


def log(
    message: Message,
    status: str,
    finish_reason: str,
    usage: tuple[int, int] | None,
    timings: AnswerTimings,
    error: BaseException | None,
) -> None:
    """The one line that says how an answer ended: status, timings, token counts."""
    fields = {"status": status, "finish_reason": finish_reason, **timings.fields()}
    if usage is not None:
        fields["prompt_tokens"], fields["completion_tokens"] = usage
    if status == Status.ERROR and error is not None:
        fields.update(error_fields(error))
    logger.info(
        "Answer %s ended %s in %s ms", message.id, status, fields["duration_ms"], extra=fields
    )
