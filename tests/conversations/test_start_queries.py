"""What posting a message, which starts its answer, asks of the database: counted, so a
change that adds to it shows (docs/performance.md, "A cheaper answer start")."""

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from streaming.exceptions import QuotaExceeded, StorageFull
from streaming.models import Conversation, Message, Quota
from streaming.services import conversations

pytestmark = pytest.mark.django_db

# Today's count for a user already counted whose conversation has a finished turn, the
# transaction's start and end included (savepoints here, inside the test's transaction);
# the failure message lists them if it grows.
QUERIES = 21


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
    reading_limits = [s for s in sql if "streaming_quota" in s]
    assert len(reading_limits) == 1
    assert '"streaming_storage"' in reading_limits[0]
    assert '"auth_user"' in reading_limits[0]
    if connection.vendor == "postgresql":
        assert "FOR UPDATE" in reading_limits[0]
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
