"""Search over one user's ~50 MB of message text on PostgreSQL, without and with the GIN
indexes of migration 0010.

The user (`bench-search`) gets SEARCH_MB of text in conversations of 25 messages of about
1 KB each, written once into the benchmark's database and kept for later runs. The words
come from a made-up vocabulary drawn with Zipf's law, as the words of real text are, plus a
few planted at known rates, so the queries range from a word in a handful of messages to one
in nearly every conversation. Each query goes through ``listing.search``, the code the page
uses: the conversations found, titles and snippets highlighted. "No index" drops the two
indexes inside a transaction that is rolled back, so the same queries run on the same
rows; nothing else differs.
"""

import random
import statistics
import time
from collections.abc import Iterator
from typing import Any

from bench.stack import DATABASE_URL, setup_django

#: Megabytes of message text the user has.
SEARCH_MB = 50
MESSAGES_PER_CONVERSATION = 25
MESSAGE_CHARS = 1000
#: Runs of each query: few without the index, where one run takes seconds.
RUNS_INDEXED, RUNS_UNINDEXED = 30, 3
USERNAME = "bench-search"
# Planted words and the share of messages each is in: rare, occasional, common.
PLANTED = {"xylophone": 0.0002, "harbour": 0.01, "weather": 0.3}
QUERIES = (
    ("a rare word (~10 messages)", "xylophone"),
    ("an occasional word (1 % of messages)", "harbour"),
    ("a common word (30 % of messages)", "weather"),
    ("two words", "harbour weather"),
    ("a phrase", '"harbour weather"'),
    ("a word in no message", "zeppelinoid"),
)


def run() -> list[tuple[str, str]]:
    """Fill the user's text if it is not there yet; time every query without and with the
    indexes; the rows for the two-column table."""
    import psycopg

    try:
        psycopg.connect(DATABASE_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        if "does not exist" not in str(exc):
            return [("search", f"skipped: PostgreSQL not reachable ({exc.__class__.__name__})")]
    setup_django(DATABASE_URL)
    from django.db import connection

    if connection.vendor != "postgresql":
        return [("search", "skipped: Django was set up on another database first")]
    user, megabytes = _filled_user()
    rows = [("search: the user's text", f"{megabytes:.1f} MB in {_messages(user):,} messages")]
    unindexed, built = _timed(user, RUNS_UNINDEXED, indexes=False)
    indexed, _ = _timed(user, RUNS_INDEXED, indexes=True)
    rows.append(("search: building both indexes (plain CREATE INDEX)", f"{built:.1f} s"))
    for label, query in QUERIES:
        rows.append(
            (
                f"search {label}: `{query}`",
                f"no index {_figures(unindexed[query])}; GIN {_figures(indexed[query])}",
            )
        )
    everything_before = [t for times in unindexed.values() for t in times]
    everything_after = [t for times in indexed.values() for t in times]
    rows.append(
        (
            "search, all queries together",
            f"no index {_figures(everything_before)}; GIN {_figures(everything_after)}",
        )
    )
    return rows


def _figures(times: list[float]) -> str:
    return f"p50 {_p(times, 50):,.0f} ms, p95 {_p(times, 95):,.0f} ms"


def _p(times: list[float], percent: int) -> float:
    if len(times) == 1:
        return times[0]
    return statistics.quantiles(times, n=100, method="inclusive")[percent - 1] * 1000


def _timed(user: Any, runs: int, *, indexes: bool) -> tuple[dict[str, list[float]], float]:
    """Seconds of each run of each query; without the indexes, dropped in a transaction
    that is rolled back, and then how long building them again took (as the models
    declare them; migration 0010 builds them CONCURRENTLY, which takes longer)."""
    from django.db import connection, transaction

    from streaming.models import Conversation, Message
    from streaming.services import listing

    times: dict[str, list[float]] = {query: [] for _, query in QUERIES}
    built = 0.0
    with transaction.atomic():
        if not indexes:
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX message_search")
                cursor.execute("DROP INDEX conversation_search")
        for _, query in QUERIES:  # the first run of each reads from disk
            listing.search(user, query)
        for _ in range(runs):
            for _, query in QUERIES:
                started = time.perf_counter()
                listing.search(user, query)
                times[query].append(time.perf_counter() - started)
        if not indexes:
            started = time.perf_counter()
            with connection.schema_editor() as editor:
                for model, name in (
                    (Message, "message_search"),
                    (Conversation, "conversation_search"),
                ):
                    [index] = [i for i in model._meta.indexes if i.name == name]
                    editor.add_index(model, index)
            built = time.perf_counter() - started
        transaction.set_rollback(True)
    return times, built


def _messages(user: Any) -> int:
    from streaming.models import Message

    return Message.objects.filter(conversation__owner=user).count()


def _filled_user() -> tuple[Any, float]:
    """The benchmark's user with SEARCH_MB of message text, written if not there yet."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.db.models import Sum
    from django.db.models.functions import Length

    from streaming.models import Conversation, Message

    user, _ = User.objects.get_or_create(username=USERNAME)
    mine = Message.objects.filter(conversation__owner=user)
    have = mine.aggregate(chars=Sum(Length("content")))["chars"] or 0
    if have < SEARCH_MB * 1_000_000 * 0.95:
        Conversation.objects.filter(owner=user).delete()
        with transaction.atomic():
            for conversation, messages in _conversations(user):
                conversation.save()
                Message.objects.bulk_create(messages)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE streaming_message")
            cursor.execute("ANALYZE streaming_conversation")
        have = mine.aggregate(chars=Sum(Length("content")))["chars"]
    return user, have / 1_000_000


def _conversations(user: Any) -> Iterator[tuple[Any, list[Any]]]:
    from datetime import timedelta

    from django.utils import timezone

    from streaming.models import Conversation, Message

    rng = random.Random(18)
    vocabulary = _vocabulary(rng, 20_000)
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]  # Zipf's law
    count = SEARCH_MB * 1_000_000 // (MESSAGES_PER_CONVERSATION * MESSAGE_CHARS)
    now = timezone.now()
    for number in range(count):
        when = now - timedelta(minutes=count - number)
        title = " ".join(rng.choices(vocabulary[:2000], k=rng.randint(2, 5))).capitalize()
        conversation = Conversation(owner=user, title=title)
        messages = []
        for turn in range(MESSAGES_PER_CONVERSATION):
            words = rng.choices(vocabulary, weights, k=MESSAGE_CHARS // 4)
            for word, share in PLANTED.items():
                if rng.random() < share:
                    words[rng.randrange(len(words))] = word
            text = " ".join(words).capitalize()
            text = text[: text.rfind(" ", 0, MESSAGE_CHARS)] + "."
            role = "user" if turn % 2 == 0 else "assistant"
            messages.append(
                Message(
                    conversation=conversation,
                    role=role,
                    content=text,
                    created_at=when + timedelta(seconds=turn),
                )
            )
        yield conversation, messages


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    """Made-up words of 2 to 10 letters, pronounceable enough for the English stemmer to
    treat them as words, none of them a planted one."""
    consonants, vowels = "bcdfghklmnprstvwz", "aeiou"
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = rng.randint(1, 4)
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))
        if word not in PLANTED:
            words[word] = None
    return list(words)
