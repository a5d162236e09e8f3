"""What posting a message, which starts its answer, asks of the database: counted, so a
change that adds to it shows (docs/performance.md, "A cheaper answer start")."""

import threading
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from streaming.exceptions import QuotaExceeded, StorageFull
from streaming.models import Conversation, Message, Quota, Storage
from streaming.services import conversations
from streaming.services.quotas import Standing, lock_owner, standing
from tests.support.waiting import poll_until

pytestmark = pytest.mark.django_db

# Today's count for a user already counted whose conversation has a finished turn, the
# transaction's start and end included (savepoints here, inside the test's transaction);
# the failure message lists them if it grows.
QUERIES = 22


def post(conversation: Conversation, content: str) -> None:
    conversations.do_post_user_message(conversation, content, uuid.uuid4())
    # Its answer ends, so the next message may start one.
    Message.objects.filter(status=Message.Status.STREAMING).update(status="complete")
    conversation.refresh_from_db()


def test_the_user_s_limits_are_read_once_with_their_row_lock(
    conversation: Conversation, settings: Any
) -> None:
    Quota.objects.create(user_id=conversation.owner_id, daily_token_budget=10**6)
    post(conversation, "the first, which counts the user's storage")

    with CaptureQueriesContext(connection) as queries:
        conversations.do_post_user_message(conversation, "hello", uuid.uuid4())

    sql = [query["sql"] for query in queries.captured_queries]
    reading_limits = [n for n, s in enumerate(sql) if "streaming_quota" in s]
    assert len(reading_limits) == 1
    assert '"streaming_storage"' in sql[reading_limits[0]]
    # After the lock, in a statement of its own: a locking statement's subqueries would
    # read the rows as they were before it waited (PostgreSQL's READ COMMITTED).
    if connection.vendor == "postgresql":
        locking = [n for n, s in enumerate(sql) if "FOR UPDATE" in s]
        assert len(locking) == 1
        assert '"auth_user"' in sql[locking[0]]
        assert locking[0] < reading_limits[0]
    assert len(sql) <= QUERIES, "\n".join(s[:120] for s in sql)


def test_limits_read_with_the_lock_are_the_ones_staff_set(
    conversation: Conversation, settings: Any
) -> None:
    settings.DAILY_TOKEN_BUDGET = 0
    settings.STORAGE_QUOTA_CHARS = 0
    post(conversation, "before any limit")
    quota = Quota.objects.create(user_id=conversation.owner_id, daily_token_budget=1)
    Message.objects.filter(role=Message.Role.ASSISTANT).update(prompt_tokens=5)
    with pytest.raises(QuotaExceeded):
        post(conversation, "over the budget staff set")

    quota.daily_token_budget = 0
    quota.storage_chars = 10
    quota.save()
    with pytest.raises(StorageFull):
        post(conversation, "more than the ten characters staff allow")
    assert not Message.objects.filter(content__startswith="over").exists()
    assert not Message.objects.filter(content__startswith="more than").exists()


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_while_waiting_for_the_lock_is_what_the_checks_read(
    postgresql: None, user: User
) -> None:
    """Two uploads (or messages) of one user at once: the second waits for the first's lock,
    then must see the room the first took, or both take the last of it."""
    Storage.objects.update_or_create(user_id=user.pk, defaults={"chars": 10})
    locked, waiting_seen = threading.Event(), threading.Event()
    read: list[Standing] = []

    def first() -> None:
        with transaction.atomic():
            lock_owner(user.pk)
            Storage.objects.filter(user_id=user.pk).update(chars=F("chars") + 500)
            locked.set()
            assert waiting_seen.wait(10)  # commits only once the second waits for the lock
        connection.close()

    def second() -> None:
        assert locked.wait(10)
        with transaction.atomic():
            lock_owner(user.pk)
            read.append(standing(user.pk))
        connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    try:
        poll_until(blocked_on_a_lock, what="the second transaction waiting for the lock")
    finally:
        waiting_seen.set()
        for thread in threads:
            thread.join(15)
    assert [limits.stored for limits in read] == [510]


def blocked_on_a_lock() -> bool:
    """Whether another connection of this database waits for a lock now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cursor.fetchone()
    return bool(row and row[0])
