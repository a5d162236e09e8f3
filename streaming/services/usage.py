"""Tokens spent, as the provider reported them, summed by any grouping: one function for
the usage page, the chat page's total and the admin's figures and CSV.

A group key names an expression over a message (``GROUPS``); adding one is adding an
entry there.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from django.db.models import Count, Expression, F, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate

from streaming.models import Conversation, Message
from streaming.services.quotas import start_of_day

#: What each group key sums by. Days are UTC days, as the daily token budget's.
GROUPS: dict[str, Expression | F] = {
    "day": TruncDate("created_at", tzinfo=UTC),
    "model": F("model"),
    # The name the answer recorded: a deleted provider's answers still add up under it.
    "provider": F("provider_name"),
    "user": F("conversation__owner__username"),
}
#: The days the usage page shows, today included.
PAGE_DAYS = 30


class Totals(TypedDict):
    answers: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def answers(
    messages: QuerySet[Message] | None = None, *, imported: bool = False
) -> QuerySet[Message]:
    """The answers among ``messages`` (all messages if None): only they cost tokens.

    Imported answers (``Message.imported``) cost this site nothing: left out unless
    ``imported``.
    """
    queryset = Message.objects.all() if messages is None else messages
    queryset = queryset.filter(role=Message.Role.ASSISTANT)
    return queryset if imported else queryset.filter(imported=False)


def summarize(
    messages: QuerySet[Message], by: Sequence[str] = (), *, imported: bool = False
) -> list[dict[str, Any]]:
    """``messages``' answers summed by the group keys ``by`` (of ``GROUPS``): one row per
    group, its keys and ``Totals``, ordered by the keys. With no keys, one row of totals.

    The query groups the answers themselves, never a join that repeats them, so a filter
    on ``messages`` (or on what they belong to) cannot count one twice.
    """
    unknown = set(by) - GROUPS.keys()
    if unknown:
        raise ValueError(f"Unknown usage group keys: {sorted(unknown)}")
    # Filtered by pk, so a queryset filtered through joins is summed once per answer.
    chosen = answers(messages, imported=imported)
    queryset = Message.objects.filter(pk__in=chosen.order_by().values("pk"))
    sums = _sums()
    if not by:
        rows = [queryset.aggregate(**sums)]
    else:
        keyed = queryset.annotate(**{f"_{key}": GROUPS[key] for key in by})
        rows = list(
            keyed.values(*(f"_{key}" for key in by))
            .annotate(**sums)
            .order_by(*(f"_{key}" for key in by))
        )
        rows = [{(k[1:] if k.startswith("_") else k): v for k, v in row.items()} for row in rows]
    for row in rows:
        row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    return rows


def _sums() -> dict[str, Any]:
    return {
        "answers": Count("pk"),
        "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
        "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
    }


def annotate_totals(queryset: QuerySet[Any], path: str) -> QuerySet[Any]:
    """``queryset`` (users, say) with ``prompt_tokens_used`` and ``completion_tokens_used``:
    the sums over the answers whose ``path`` (``conversation__owner``) is the row.

    Subqueries, so the admin's filters and searches on the rows cannot multiply them.
    """
    per_row = answers().filter(**{path: OuterRef("pk")}).order_by().values(path)
    annotated: QuerySet[Any] = queryset.annotate(
        **{
            f"{name}_used": Coalesce(Subquery(per_row.annotate(n=_sums()[name]).values("n")), 0)
            for name in ("prompt_tokens", "completion_tokens")
        }
    )
    return annotated


def totals(messages: QuerySet[Message], *, imported: bool = False) -> Totals:
    """The sums over ``messages``' answers (``summarize``)."""
    row = summarize(messages, imported=imported)[0]
    return Totals(
        answers=row["answers"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        total_tokens=row["total_tokens"],
    )


def conversation_totals(conversation: Conversation) -> Totals:
    """What every answer of the conversation (all versions) cost, imported ones too: the
    sum of what its page shows under each answer."""
    return totals(Message.objects.filter(conversation=conversation), imported=True)


def recent_days(owner_id: int, now: datetime, days: int = PAGE_DAYS) -> QuerySet[Message]:
    """The user's messages of the last ``days`` UTC days, today included."""
    since = start_of_day(now) - timedelta(days=days - 1)
    return Message.objects.filter(conversation__owner_id=owner_id, created_at__gte=since)


def as_csv(rows: Iterable[dict[str, Any]], by: Sequence[str]) -> str:
    """``summarize``'s rows as CSV, a header first."""
    columns = [*by, "answers", "prompt_tokens", "completion_tokens", "total_tokens"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    # A name a spreadsheet would run as a formula is written as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
