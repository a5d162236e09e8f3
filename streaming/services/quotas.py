"""Per-user limits on answers, counted in the database so that every process agrees.

Each answer is one call to the paid model, so the limits count answers: how many of a
user's answers stream at once, how many started in the last minute (new messages, retries
and continuations alike), and the tokens spent since midnight UTC. ``check_new_answer`` runs in the
transaction that would create the answer, after ``lock_owner``: two messages of one user on
two processes are counted one after the other, never both against the same figures.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import F, Max, Min, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Length

from streaming.exceptions import QuotaExceeded, RateLimited
from streaming.models import Continuation, GroupAccess, Message, Quota, Storage
from streaming.text import CHARS_PER_TOKEN

# The wait suggested when a user is at their limit of answers at once: answers end on
# their own, or the user stops one; a few seconds is when trying again may succeed.
_RUNNING_RETRY_SECONDS = 5
_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Standing:
    """What a user's checks read, read with their row lock: their limits, and the
    characters they store (None: not counted yet). A limit is the figure staff set for the
    user, else the most generous of their groups' (streaming/groups.py), else the site's."""

    answers_at_once: int
    messages_per_minute: int
    #: Tokens a day; 0: no budget.
    daily_token_budget: int
    #: Characters stored; 0: no quota.
    storage_chars: int
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
            **{f"{how}_{name}": _of_groups(how, name) for how, name in _GROUP_FIGURES},
        )
        .values("budget", "storage", "stored", *(f"{how}_{name}" for how, name in _GROUP_FIGURES))
        .first()
    )
    found: dict[str, Any] = row or {}

    def most_generous(name: str, unlimited: int | None = None) -> int | None:
        # The highest figure of the user's groups, or none at all when one says none.
        if unlimited is not None and found.get(f"least_{name}") == unlimited:
            return unlimited
        figure: int | None = found.get(f"most_{name}")
        return figure

    def first_of(*figures: int | None) -> int:
        return next(figure for figure in figures if figure is not None)

    return Standing(
        answers_at_once=first_of(most_generous("answers_at_once"), settings.LIMIT_ANSWERS_PER_USER),
        messages_per_minute=first_of(
            most_generous("messages_per_minute"), settings.LIMIT_MESSAGES_PER_MINUTE
        ),
        daily_token_budget=first_of(
            found.get("budget"), most_generous("daily_token_budget", 0), settings.DAILY_TOKEN_BUDGET
        ),
        storage_chars=first_of(
            found.get("storage"), most_generous("storage_chars", 0), settings.STORAGE_QUOTA_CHARS
        ),
        stored=found.get("stored"),
    )


# The aggregates of the user's groups' figures standing() reads: the highest of each, and
# the lowest of those where 0 means no limit (the most generous, then, whatever the rest).
_GROUP_FIGURES = (
    ("most", "answers_at_once"),
    ("most", "messages_per_minute"),
    ("most", "daily_token_budget"),
    ("least", "daily_token_budget"),
    ("most", "storage_chars"),
    ("least", "storage_chars"),
)


def _of_groups(how: str, name: str) -> Subquery:
    rules = GroupAccess.objects.filter(group__user=OuterRef("pk")).order_by().values("group__user")
    aggregate = Max(name) if how == "most" else Min(name)
    return Subquery(rules.annotate(figure=aggregate).values("figure")[:1])


def check_new_answer(owner_id: int, now: datetime, limits: Standing) -> None:
    """Raise RateLimited or QuotaExceeded if ``owner_id`` may not start an answer ``now``
    under ``limits`` (``standing``, read after ``lock_owner``)."""
    # Imported answers were never asked for here: they take no turn and no room.
    answers = Message.objects.filter(
        conversation__owner_id=owner_id, role=Message.Role.ASSISTANT, imported=False
    )
    limit = limits.answers_at_once
    if answers.filter(status=Message.Status.STREAMING).count() >= limit:
        raise RateLimited(
            f"Answers being written at once are limited to {limit}. "
            "Wait for one to finish, or stop one.",
            retry_after=_RUNNING_RETRY_SECONDS,
        )
    per_minute = limits.messages_per_minute
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
    budget = limits.daily_token_budget
    if budget:
        used = tokens_used_since(owner_id, start_of_day(now))
        if used >= budget:
            wait = (start_of_day(now) + timedelta(days=1) - now).total_seconds()
            raise QuotaExceeded(
                f"You have used your {budget:,} tokens for today ({used:,} so far). "
                f"More become available at midnight UTC, in {_seconds(wait)}.",
                retry_after=wait,
            )


def daily_budget(owner_id: int) -> int:
    """The user's tokens a day (``Standing``); 0: none."""
    return standing(owner_id).daily_token_budget


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
