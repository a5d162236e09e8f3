"""A user's conversations as lists show them: pages by last activity, groups by day,
search, and the events that keep every open tab's list current.

Only the owner's conversations that are not deleted are ever listed or found.
"""

import functools
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.db import connection
from django.db.models import Case, Exists, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from streaming import control, layer
from streaming.models import SEARCH_CONFIG, Conversation, Message, search_document

#: Conversations per page of the list page and per load of the sidebar.
PAGE_SIZE = 50
#: The most conversations one search shows.
SEARCH_LIMIT = 50
#: The longest search accepted, in characters; the rest is ignored.
MAX_QUERY_CHARS = 200
# Characters of a message shown either side of its first match, on SQLite.
_SNIPPET_RADIUS = 80


def visible(user_id: Any) -> QuerySet[Conversation]:
    """The conversations the user ``user_id`` may see in a list, each with `answering` (an
    answer of it streams now), newest activity first."""
    return _with_answering(
        Conversation.objects.filter(owner_id=user_id, deleted_at__isnull=True)
    ).order_by("-updated_at", "-id")


def answering() -> Exists:
    """Whether an answer of the conversation (the row of the query it is in) streams now."""
    streaming = Message.objects.filter(conversation=OuterRef("pk"), status=Message.Status.STREAMING)
    return Exists(streaming)


def _with_answering(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    return conversations.annotate(answering=answering())


# --- pages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a user's conversations, and where the next begins (None: the last)."""

    conversations: list[Conversation]
    next_cursor: str | None


def encode_cursor(conversation: Conversation) -> str:
    """The keyset cursor just after ``conversation``: its (updated_at, id)."""
    return f"{conversation.updated_at.isoformat()}~{conversation.id}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """(updated_at, id) from a cursor, or None for one this site did not write."""
    stamp, _, ident = cursor.partition("~")
    try:
        when, after_id = datetime.fromisoformat(stamp), uuid.UUID(ident)
    except ValueError:
        return None
    return (when, after_id) if timezone.is_aware(when) else None


def page_of(user: AbstractBaseUser | AnonymousUser, cursor: str | None = None) -> Page:
    """The first PAGE_SIZE conversations of ``user``, or those after ``cursor``.

    A keyset on (updated_at, id): a conversation that moves to the top meanwhile is not
    listed twice on later pages, and no page costs more than its own rows. A cursor this
    site did not write starts from the top.
    """
    conversations = visible(user.pk)
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        when, ident = after
        conversations = conversations.filter(
            Q(updated_at__lt=when) | Q(updated_at=when, id__lt=ident)
        )
    rows = list(conversations.only("id", "title", "updated_at", "owner_id")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return Page(rows, encode_cursor(rows[-1]) if more else None)


def group_label(moment: datetime, today: date | None = None) -> str:
    """Which group of the list a conversation last active at ``moment`` falls in, by the
    days of the site's time zone: Today, Yesterday, Previous 7 days, Earlier."""
    today = today or timezone.localdate()
    days = (today - timezone.localtime(moment).date()).days
    if days <= 0:
        return "Today"
    if days == 1:
        return "Yesterday"
    if days <= 7:
        return "Previous 7 days"
    return "Earlier"


def ago(moment: datetime, now: datetime | None = None) -> str:
    """How long ago ``moment`` was, in the words a page shows before its script draws the
    reader's own (chat/times.js): "just now" under a minute, then Django's timesince."""
    now = now or timezone.now()
    if now - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, now)} ago"


def listed(conversation: Conversation) -> control.ListedConversation:
    """A conversation as the lists show it (it must carry `answering`: ``visible``)."""
    return {
        "id": str(conversation.id),
        "title": str(conversation),
        "updated_at": conversation.updated_at.isoformat(),
        "answering": bool(getattr(conversation, "answering", False)),
        "group": group_label(conversation.updated_at),
    }


# --- keeping every tab's list current ------------------------------------------------------


def changed(conversation_id: Any) -> Callable[[], list[layer.Outgoing]]:
    """For ``events.on_commit``: tell every socket of the conversation's owner how it is
    listed now.

    The row is read after the commit, not when the change was made: of two such events sent
    out of order, the second still says what is true. A conversation deleted is announced
    as removed; one purged, not at all (it was announced as removed when it was deleted).
    """
    return functools.partial(_listing_now, conversation_id)


def _listing_now(conversation_id: Any) -> list[layer.Outgoing]:
    # One query, every answer's start and end: the row as ``visible`` would list it.
    row = _with_answering(Conversation.objects.filter(pk=conversation_id)).first()
    if row is None:
        return []
    if row.deleted_at is not None:
        event: control.UserEvent = control.conversation_removed_event(conversation_id)
    else:
        event = control.conversation_changed_event(listed(row))
    return [layer.to_user(row.owner_id, event)]


# --- search --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """A conversation found by a search: its title and a piece of a matching message, both
    HTML with the matches in <mark> and everything else escaped, and that message (None
    when only the title matched), which the result opens the conversation at."""

    conversation: Conversation
    title: SafeString
    snippet: SafeString
    message_id: uuid.UUID | None = None


def search(user: AbstractBaseUser | AnonymousUser, query: str) -> list[Hit]:
    """The user's conversations whose title or any message matches ``query``, newest
    activity first: PostgreSQL's full-text search (websearch syntax: words, "a phrase",
    -word, or) on PostgreSQL, through the GIN indexes of migration 0010; every word as a
    substring elsewhere (SQLite, where no index helps: fine for the embedded default's
    sizes)."""
    query = " ".join(query.split())[:MAX_QUERY_CHARS]
    if not query:
        return []
    if connection.vendor == "postgresql":
        return _search_postgres(user, query)
    return _search_substrings(user, query)


def _search_postgres(user: AbstractBaseUser | AnonymousUser, text: str) -> list[Hit]:
    query = SearchQuery(text, search_type="websearch", config=SEARCH_CONFIG)
    # Marks no one can type in advance: the headline is escaped whole, then they become
    # <mark>, so a title or message holding HTML (or these marks' look-alikes) stays text.
    token = secrets.token_hex(8)
    start, stop = f"[{token}[", f"]{token}]"
    # Each side found once, as a set, through its GIN index (`search_document` is what the
    # index holds): not a match of every message of every conversation, one by one.
    matching = Message.objects.annotate(document=search_document("content")).filter(document=query)
    in_messages = matching.filter(conversation__owner_id=user.pk).values("conversation_id")
    titled = (
        Conversation.objects.annotate(document=search_document("title"))
        .filter(owner_id=user.pk, document=query)
        .values("pk")
    )
    hits = list(
        visible(user.pk)
        .annotate(
            title_marked=SearchHeadline(
                "title",
                query,
                config=SEARCH_CONFIG,
                start_sel=start,
                stop_sel=stop,
                highlight_all=True,
            ),
        )
        .filter(Q(pk__in=titled) | Q(pk__in=in_messages))
        .only("id", "title", "updated_at", "owner_id")[:SEARCH_LIMIT]
    )
    # The best-matching message of each conversation found (PostgreSQL's rank of the words'
    # frequency and nearness; the first of equals), for its snippet and where its link opens.
    best = (
        matching.filter(conversation_id__in=[hit.pk for hit in hits])
        .annotate(rank=SearchRank(search_document("content"), query))
        .order_by("conversation_id", "-rank", "created_at")
        .distinct("conversation_id")
        .values_list("id", flat=True)
    )
    snippets = {
        conversation_id: (message_id, marked)
        for conversation_id, message_id, marked in Message.objects.filter(pk__in=list(best))
        .annotate(
            marked=SearchHeadline(
                "content",
                query,
                config=SEARCH_CONFIG,
                start_sel=start,
                stop_sel=stop,
                max_words=30,
                min_words=12,
                # A fragment for each of a few words far apart: every word is shown marked.
                max_fragments=3,
                fragment_delimiter=" … ",
            )
        )
        .values_list("conversation_id", "id", "marked")
    }

    def marked(text: str) -> SafeString:
        html = escape(text).replace(start, "<mark>").replace(stop, "</mark>")
        return mark_safe(html)  # every piece of the text escaped above

    result = []
    for hit in hits:
        message_id, snippet = snippets.get(hit.pk, (None, ""))
        result.append(Hit(hit, marked(hit.title_marked or str(hit)), marked(snippet), message_id))
    return result


def _search_substrings(user: AbstractBaseUser | AnonymousUser, text: str) -> list[Hit]:
    words = [word for word in text.replace('"', " ").split() if not word.startswith("-")][:8]
    if not words:
        return []
    conversations = visible(user.pk)
    for word in words:
        in_messages = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=word)
        conversations = conversations.filter(Q(title__icontains=word) | Exists(in_messages))
    hits = list(conversations.only("id", "title", "updated_at", "owner_id")[:SEARCH_LIMIT])
    pattern = re.compile("|".join(re.escape(word) for word in words), re.IGNORECASE)
    any_word = Q()
    for word in words:
        any_word |= Q(content__icontains=word)
    # The message that holds the most of the words (the first of equals).
    holds = sum(
        (Case(When(content__icontains=word, then=Value(1)), default=Value(0)) for word in words),
        Value(0),
    )
    result = []
    for hit in hits:
        message = (
            hit.messages.filter(any_word)
            .annotate(holds=holds)
            .order_by("-holds", "created_at")
            .only("content")
            .first()
        )
        snippet = _window(message.content, words) if message else ""
        title = highlight(str(hit), pattern)
        found_in = message.pk if message else None
        result.append(Hit(hit, title, highlight(snippet, pattern), found_in))
    return result


def _window(text: str, words: list[str]) -> str:
    """The parts of ``text`` around the first place of each of ``words``, joined by …, and
    with … where it was cut: every word it holds is in the snippet."""
    spans = sorted(
        (found.start(), found.end())
        for word in words
        if (found := re.search(re.escape(word), text, re.IGNORECASE)) is not None
    )
    if not spans:
        return text[: 2 * _SNIPPET_RADIUS]
    # The snippet's length whatever the words' number: less around each when there are more.
    radius = max(_SNIPPET_RADIUS // len(spans), 20)
    parts: list[list[int]] = []
    for begin, end in spans:
        begin, end = max(0, begin - radius), min(len(text), end + radius)
        if parts and begin <= parts[-1][1]:
            parts[-1][1] = max(parts[-1][1], end)
        else:
            parts.append([begin, end])
    body = " … ".join(text[begin:end] for begin, end in parts)
    return ("…" if parts[0][0] else "") + body + ("…" if parts[-1][1] < len(text) else "")


def highlight(text: str, pattern: re.Pattern[str]) -> SafeString:
    """``text`` escaped, with every match of ``pattern`` in <mark>."""
    pieces, last = [], 0
    for match in pattern.finditer(text):
        pieces += [escape(text[last : match.start()]), f"<mark>{escape(match[0])}</mark>"]
        last = match.end()
    pieces.append(escape(text[last:]))
    return mark_safe("".join(pieces))  # every piece of the text escaped above
