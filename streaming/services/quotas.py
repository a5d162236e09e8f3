"""Per-user limits on answers, counted in the database so that every process agrees.

Each answer is one call to the paid model, so the limits count answers: how many of a
user's answers stream at once, how many started in the last minute (new messages, retries
and continuations alike), and the tokens spent since midnight UTC. ``check_new_answer`` runs in the
transaction that would create the answer, after ``lock_owner``: two messages of one user on
two processes are counted one after the other, never both against the same figures.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Length

from streaming.exceptions import QuotaExceeded, RateLimited
from streaming.models import Continuation, Message, Quota, Storage
from streaming.text import CHARS_PER_TOKEN

# The wait suggested when a user is at their limit of answers at once: answers end on
# their own, or the user stops one; a few seconds is when trying again may succeed.
_RUNNING_RETRY_SECONDS = 5
_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Standing:
    """What a user's checks read, read with their row lock: the limits staff set for them
    (None: the site's), and the characters they store (None: not counted yet)."""

    daily_token_budget: int | None = None
    storage_chars: int | None = None
    stored: int | None = None


def lock_owner(owner_id: int) -> None:
    """Take the user's row lock until the transaction ends (PostgreSQL; SQLite writes are
    serialised by its IMMEDIATE transactions), so one user's checks run one at a time."""
    list(User.objects.select_for_update().filter(pk=owner_id).values_list("pk"))


def standing(owner_id: int) -> Standing:
    """What the user's checks read, in one query: after ``lock_owner``, never in its
    statement, whose subqueries would see the rows as they were before it waited for the
    lock (PostgreSQL's READ COMMITTED), not what the transaction it waited for committed."""
    own = Quota.objects.filter(user_id=OuterRef("pk"))
    row = (
        User.objects.filter(pk=owner_id)
        .annotate(
            budget=Subquery(own.values("daily_token_budget")[:1]),
            storage=Subquery(own.values("storage_chars")[:1]),
            stored=Subquery(Storage.objects.filter(user_id=OuterRef("pk")).values("chars")[:1]),
        )
        .values_list("budget", "storage", "stored")
        .first()
    )
    return Standing() if row is None else Standing(*row)


def check_new_answer(owner_id: int, now: datetime, standing: Standing | None = None) -> None:
    """Raise RateLimited or QuotaExceeded if ``owner_id`` may not start an answer ``now``."""
    # Imported answers were never asked for here: they take no turn and no room.
    answers = Message.objects.filter(
        conversation__owner_id=owner_id, role=Message.Role.ASSISTANT, imported=False
    )
    limit = settings.LIMIT_ANSWERS_PER_USER
    if answers.filter(status=Message.Status.STREAMING).count() >= limit:
        raise RateLimited(
            f"Answers being written at once are limited to {limit}. "
            "Wait for one to finish, or stop one.",
            retry_after=_RUNNING_RETRY_SECONDS,
        )
    per_minute = settings.LIMIT_MESSAGES_PER_MINUTE
    recent = list(
        answers.filter(created_at__gt=now - _WINDOW)
        .order_by("created_at")
        .values_list("created_at", flat=True)[:per_minute]
    )
    # A continuation asks the model as a new answer does (services/continuation.py).
    recent = sorted(
        recent
        + list(
            Continuation.objects.filter(
                message__conversation__owner_id=owner_id, started_at__gt=now - _WINDOW
            )
            .order_by("started_at")
            .values_list("started_at", flat=True)[:per_minute]
        )
    )[:per_minute]
    if len(recent) >= per_minute:
        wait = (recent[0] + _WINDOW - now).total_seconds()
        raise RateLimited(
            f"Messages are limited to {per_minute} a minute. Try again in {_seconds(wait)}.",
            retry_after=wait,
        )
    budget = daily_budget(owner_id, standing)
    if budget:
        used = tokens_used_since(owner_id, start_of_day(now))
        if used >= budget:
            wait = (start_of_day(now) + timedelta(days=1) - now).total_seconds()
            raise QuotaExceeded(
                f"You have used your {budget:,} tokens for today ({used:,} so far). "
                f"More become available at midnight UTC, in {_seconds(wait)}.",
                retry_after=wait,
            )


def daily_budget(owner_id: int, standing: Standing | None = None) -> int:
    """The user's tokens a day: their own figure if staff set one, else the site's; 0: none.
    Read from ``standing`` when given (``lock_owner`` read it)."""
    if standing is not None:
        figure = standing.daily_token_budget
    else:
        own = Quota.objects.filter(user_id=owner_id).values_list("daily_token_budget", flat=True)
        figure = own.first()
    return settings.DAILY_TOKEN_BUDGET if figure is None else figure


def tokens_used_since(owner_id: int, since: datetime) -> int:
    """Tokens the user's answers since ``since`` cost: as the provider counted them, or,
    for an answer it did not count (stopped, failed), the estimates of its request and its
    text (``estimate_tokens``, in SQL); and their continuations since then (``_continued``)."""
    unreported = Length("content") / Value(CHARS_PER_TOKEN) + Value(1)
    total = Message.objects.filter(
        conversation__owner_id=owner_id,
        role=Message.Role.ASSISTANT,
        created_at__gte=since,
        imported=False,  # history from an export file cost nothing today
    ).aggregate(
        used=Sum(
            Coalesce(F("prompt_tokens"), F("prompt_estimate"), Value(0))
            + Coalesce(F("completion_tokens"), unreported)
        )
    )["used"]
    return int(total or 0) + _continued(owner_id, since)


def _continued(owner_id: int, since: datetime) -> int:
    """Tokens the user's continuations since ``since`` cost that their answers' own counts
    do not hold: those of answers written before ``since`` (their day is another), and
    those the provider did not count (their estimates: an answer counted by the provider
    holds only what was reported). An answer the provider never counted is estimated from
    its whole text, its continuations' too, which so count twice: never less than spent."""
    total = Continuation.objects.filter(
        Q(message__created_at__lt=since) | Q(completion_tokens__isnull=True),
        message__conversation__owner_id=owner_id,
        started_at__gte=since,
    ).aggregate(
        used=Sum(
            Coalesce(F("prompt_tokens"), F("prompt_estimate"))
            + Coalesce(
                F("completion_tokens"),
                Coalesce(F("chars"), Value(0)) / Value(CHARS_PER_TOKEN) + Value(1),
            )
        )
    )["used"]
    return int(total or 0)


def start_of_day(now: datetime) -> datetime:
    """Midnight UTC before ``now``: the daily budget's day starts there."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _seconds(wait: float) -> str:
    seconds = max(1, round(wait))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
