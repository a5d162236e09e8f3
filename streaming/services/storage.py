"""What each user stores, in characters of message text and bytes of attached files (one
byte counting as one character), against their storage quota.

Counted as it changes rather than summed on every send: one row per user (``Storage``)
that every write of message text moves in its own transaction (a user message, an answer's
ending or sweep, an import, a purge). Summing instead would read every message of the user
on every send: 240,000 of them are a quarter of a second of PostgreSQL's time, against one
row read. The row is made from one sum the first time it is needed, and made again by
``manage.py recount_storage`` should anything change text outside these paths
(an edit in the admin); a streaming answer counts once it ends.
"""

from collections.abc import Iterable
from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, Length

from streaming.exceptions import StorageFull
from streaming.models import Attachment, Message, Storage
from streaming.services import quotas
from streaming.services.quotas import Standing


def quota(owner_id: int, standing: Standing | None = None) -> int:
    """The user's characters (``quotas.Standing``); 0: none. Read from ``standing`` when
    given (``quotas.lock_owner`` read it)."""
    return (standing or quotas.standing(owner_id)).storage_chars


def used(owner_id: int, standing: Standing | None = None) -> int:
    """Characters of message text the user stores, and bytes of attached files (counted
    once, then kept in step); from ``standing`` when given."""
    if standing is not None:
        chars = standing.stored
    else:
        chars = Storage.objects.filter(user_id=owner_id).values_list("chars", flat=True).first()
    return recount(owner_id) if chars is None else max(0, chars)


def attached_bytes(owner_id: int) -> int:
    """The bytes of the user's attached files, of what ``used`` counts (one sum)."""
    return _bytes(Attachment.objects.filter(owner_id=owner_id))


def counted(owner_id: int) -> None:
    """Make the user's count if they have none, outside the caller's transaction: one made
    inside a transaction that a refusal rolls back would be summed again at every try."""
    if not Storage.objects.filter(user_id=owner_id).exists():
        recount(owner_id)


def recount(owner_id: int) -> int:
    """Sum the user's message text again and keep that as their count; the sum."""
    total = _chars(Message.objects.filter(conversation__owner_id=owner_id).exclude(_live()))
    total += _bytes(Attachment.objects.filter(owner_id=owner_id))
    Storage.objects.update_or_create(user_id=owner_id, defaults={"chars": total})
    return total


def room(owner_id: int, standing: Standing | None = None) -> int | None:
    """How many more characters the user may store; None: no quota."""
    limit = quota(owner_id, standing)
    return None if not limit else max(0, limit - used(owner_id, standing))


def check_room(owner_id: int, adding: int, standing: Standing | None = None) -> None:
    """Raise StorageFull if ``adding`` characters would take the user past their quota;
    with nothing to add, if their quota is already full (an answer would add to it).
    ``standing``: what ``quotas.lock_owner`` read, if the caller holds the lock."""
    left = room(owner_id, standing)
    if left is None or 0 < left >= adding:
        return
    limit, stored = quota(owner_id, standing), used(owner_id, standing)
    raise StorageFull(
        f"Your conversations fill your storage ({stored:,} of {limit:,} characters)"
        + (f"; this message needs {adding:,} more." if adding else ".")
        + " Delete conversations you no longer need to make room."
    )


def add(owner_id: int, chars: int) -> None:
    """Count ``chars`` more (or fewer) for the user; a user not yet counted is summed whole
    the first time they are needed, and this is in it."""
    if chars:
        Storage.objects.filter(user_id=owner_id).update(chars=F("chars") + chars)


def add_to_owner_of(conversation_id: Any, chars: int) -> None:
    """``add`` for the owner of the conversation, in one statement."""
    if chars:
        Storage.objects.filter(user__conversations=conversation_id).update(chars=F("chars") + chars)


def add_messages(messages: QuerySet[Message], sign: int = 1) -> None:
    """Count the text of ``messages`` for their owners (``sign`` -1: no longer count it),
    read in one grouped sum; answers still streaming are not counted yet."""
    per_owner = (
        messages.exclude(_live())
        .order_by()
        .values("conversation__owner_id")
        .annotate(chars=_sum())
        .values_list("conversation__owner_id", "chars")
    )
    _apply((owner_id, sign * chars) for owner_id, chars in per_owner)


def _apply(changes: Iterable[tuple[int, int]]) -> None:
    for owner_id, chars in changes:
        add(owner_id, chars)


def _live() -> Q:
    return Q(status=Message.Status.STREAMING)


def _sum() -> Any:
    return Coalesce(Sum(Length("content")), 0)


def _bytes(attachments: QuerySet[Attachment]) -> int:
    return int(attachments.aggregate(size=Coalesce(Sum("size"), 0))["size"])


def _chars(messages: QuerySet[Message]) -> int:
    return int(messages.aggregate(chars=_sum())["chars"])
