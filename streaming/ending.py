"""How an answer ends: the status it ends with, the one write of its ending, and the line
logged about it.

The ending is written once, and only while the row is still `streaming`
(``services.answers.do_finish``, which announces `done`). A database out of reach does not
cost it: the process keeps the ending and writes it again every STREAM_CHECKPOINT_SECONDS
until the database answers. Meanwhile the answer stays in its process's registry, so the
checkpoints keep writing its heartbeat (and the rest of its text) as soon as they can and no
sweep takes it for an orphan; once written, it is saved as it really ended, with all its
text, its finish reason and its usage, and `done` follows.
"""

import asyncio
import logging
from collections.abc import Callable

from django.conf import settings

from streaming.exceptions import ChatError
from streaming.logs import AnswerTimings, error_fields
from streaming.models import Message
from streaming.services import answers, continuation
from streaming.services.database import UNREACHABLE, to_async

logger = logging.getLogger(__name__)

Status = Message.Status

SERVER_ERROR = "Something went wrong on the server. The text so far is saved."


def status(
    finished: bool,
    capped: bool,
    stop: tuple[str, str] | None,
    error: BaseException | None,
    finish_reason: str = "",
) -> tuple[str, str]:
    """The status and error to save: a stream that ``finished`` is complete whoever asked to
    stop (with a notice when a length limit cut it: services/continuation.py); else the
    ``stop`` asked for, else the reader's ``error``."""
    if finished:
        if capped:
            return Status.COMPLETE, continuation.capped_notice()
        return Status.COMPLETE, continuation.cut_notice(finish_reason)
    if stop is not None:
        return stop
    if isinstance(error, ChatError):
        return Status.ERROR, error.message
    return Status.ERROR, SERVER_ERROR


async def save(
    message: Message, outcome: answers.Outcome, *, abandoned: Callable[[], bool]
) -> str | None:
    """Write ``outcome`` as the answer's ending (and announce it), trying again while the
    database is out of reach; return the status saved, or None when the row was no longer
    `streaming` (ended elsewhere, deleted), ``abandoned()`` became true, or the write failed
    in a way trying again cannot mend (logged; the sweep ends the row then)."""
    tries = 0
    while True:
        try:
            # Its `done`, and every list's news that it no longer answers, are sent before
            # this returns (services/events.py).
            return outcome.status if await to_async(answers.do_finish)(message, outcome) else None
        except UNREACHABLE as exc:
            if not tries:
                logger.warning(
                    "Could not save the end of answer %s: %s. Trying again every %g s until "
                    "the database answers.",
                    message.id,
                    type(exc).__name__,
                    settings.STREAM_CHECKPOINT_SECONDS,
                )
        except Exception:
            logger.exception("Could not save the end of answer %s", message.id)
            return None
        tries += 1
        await asyncio.sleep(settings.STREAM_CHECKPOINT_SECONDS)
        if abandoned():
            return None
        if tries % 60 == 0:
            logger.warning("The end of answer %s is still unsaved (%d tries)", message.id, tries)


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
