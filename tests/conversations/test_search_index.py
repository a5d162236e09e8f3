"""Search on PostgreSQL goes through the GIN indexes of migration 0010.

How fast it is, is bench/search.py's business; here: the indexes exist as the models
declare them, and the planner uses them for the very queries ``listing.search`` sends,
on a table big enough that a scan would be the worse plan.
"""

import random
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.utils import ConnectionHandler
from django.test.utils import CaptureQueriesContext

from streaming.models import Conversation, Message
from streaming.services.listing import search

# Enough rows that the planner prefers an index to reading the table, with the statistics
# of ANALYZE; few enough to be written in a moment.
CONVERSATIONS, MESSAGES_EACH = 200, 20
WORDS = ["the", "a", "of", "to", "and", "question", "model", "river", "stone", "garden", "window"]


def _fill(user: User) -> Conversation:
    """CONVERSATIONS conversations of ``user``, and one more holding the word "zeppelin"
    once in its title and once in one message, which it returns."""
    rng = random.Random(18)
    rows = Conversation.objects.bulk_create(
        Conversation(owner=user, title=f"Talk {number}") for number in range(CONVERSATIONS)
    )
    Message.objects.bulk_create(
        Message(conversation=conversation, role="user", content=" ".join(rng.choices(WORDS, k=80)))
        for conversation in rows
        for _ in range(MESSAGES_EACH)
    )
    found = Conversation.objects.create(owner=user, title="Zeppelin plans")
    Message.objects.create(conversation=found, role="user", content="How big is a zeppelin?")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE streaming_message")
        cursor.execute("ANALYZE streaming_conversation")
    return found


def _plans(sqls: list[str]) -> list[str]:
    with connection.cursor() as cursor:
        plans = []
        for sql in sqls:
            cursor.execute(f"EXPLAIN {sql}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def test_migration_creates_gin_indexes_of_the_search_expressions(
    postgresql: None, db: None
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE indexname IN ('message_search', 'conversation_search') ORDER BY 1"
        )
        found = dict(cursor.fetchall())

    assert sorted(found) == ["conversation_search", "message_search"]
    assert "USING gin (to_tsvector('english'::regconfig" in found["message_search"]
    assert "COALESCE(content, ''::text)" in found["message_search"]
    assert "COALESCE(title," in found["conversation_search"]


def test_search_finds_through_the_gin_indexes(postgresql: None, user: User) -> None:
    found = _fill(user)

    with CaptureQueriesContext(connection) as queries:
        hits = search(user, "zeppelin")
    plans = _plans([query["sql"] for query in queries.captured_queries])

    assert [hit.conversation.pk for hit in hits] == [found.pk]
    assert "<mark>zeppelin</mark>" in hits[0].snippet
    # The query that finds the conversations: both sides through their index…
    assert "Bitmap Index Scan on message_search" in plans[0], plans[0]
    assert "Bitmap Index Scan on conversation_search" in plans[0], plans[0]
    # …and neither table read whole to match text.
    assert "Seq Scan on streaming_message" not in plans[0], plans[0]
    # The snippets' queries read only the conversations found (SEARCH_LIMIT at most).
    assert all("Seq Scan" not in plan for plan in plans[1:]), plans[1:]


def test_search_results_and_highlights_with_the_indexes(postgresql: None, user: User) -> None:
    # Stems, phrases, exclusions and "or" as websearch_to_tsquery reads them: the indexed
    # expression gives what the unindexed one gave.
    _fill(user)
    letters = Conversation.objects.create(owner=user, title="Letters home")
    Message.objects.create(conversation=letters, role="user", content="She answered the letters.")

    assert [h.conversation.pk for h in search(user, "letter home")] == [letters.pk]
    assert [h.conversation.pk for h in search(user, '"answered the letters"')] == [letters.pk]
    assert search(user, '"letters answered"') == []
    assert search(user, "home -letters") == []  # each title, each message on its own
    assert len(search(user, "zeppelin or letters")) == 2
    assert "<mark>Letters</mark>" in search(user, "letter")[0].title


def test_migration_changes_no_sqlite_database(tmp_path: Path, django_db_blocker: Any) -> None:
    # The embedded default: the migration applies, and builds nothing.
    sqlite = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": tmp_path / "a.sqlite3"}}
    )["default"]
    loader = MigrationLoader(None)
    before = loader.project_state(("streaming", "0008_conversation_deleted_at"))
    migration = loader.get_migration("streaming", "0010_search_index")
    with django_db_blocker.unblock():
        try:
            with sqlite.schema_editor(atomic=False) as editor:
                for model in before.apps.get_models():
                    editor.create_model(model)
                after = migration.apply(before.clone(), editor)
            with sqlite.cursor() as cursor:
                cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
                indexes = {row[0] for row in cursor.fetchall()}
        finally:
            sqlite.close()

    assert "message_history" in indexes  # the tables and their other indexes are there
    assert not {"message_search", "conversation_search"} & indexes
    # Django's record of the models has them, so no migration is ever made for them again.
    names = {index.name for index in after.models["streaming", "message"].options["indexes"]}
    assert "message_search" in names
