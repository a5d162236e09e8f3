"""`manage.py purge_conversations`: retention. A dry run counts and writes nothing; --apply
deletes the conversations idle for longer than DAYS with their messages, deleted ones too,
and never one whose answer is still streaming."""

import logging
import re
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chatsite.channel_layers import redis_layer
from streaming import metrics
from streaming.exceptions import ConversationGone
from streaming.models import Conversation, Message
from streaming.services.conversations import do_post_user_message, do_rename
from streaming.services.database import to_async
from streaming.services.deletion import PURGE_BATCH_SIZE, database_now, do_purge_deleted
from streaming.services.quotas import lock_owner
from tests.support.frames import receive_until
from tests.support.servers import RedisServer
from tests.support.waiting import poll_until

pytestmark = pytest.mark.django_db(transaction=True)

DAYS = 30


def conversation(
    owner: User, title: str, *, idle_days: float, streaming: bool = False
) -> Conversation:
    """A conversation of two messages (an answer still streaming, if asked), its last
    activity ``idle_days`` ago."""
    made = Conversation.objects.create(owner=owner, title=title)
    asked = Message.objects.create(conversation=made, role="user", content="Question?")
    Message.objects.create(
        conversation=made,
        parent=asked,
        role="assistant",
        content="So far" if streaming else "Answer.",
        status="streaming" if streaming else "complete",
    )
    then = timezone.now() - timedelta(days=idle_days)
    Message.objects.filter(conversation=made).update(created_at=then, updated_at=then)
    Conversation.objects.filter(pk=made.pk).update(updated_at=then)
    return made


def many_old(owner: User, count: int) -> None:
    """``count`` conversations of one message each, idle for longer than DAYS, made in bulk."""
    made = Conversation.objects.bulk_create(
        Conversation(owner=owner, title=f"Old {n}") for n in range(count)
    )
    Message.objects.bulk_create(
        Message(conversation=each, role="user", content="Question?") for each in made
    )
    then = timezone.now() - timedelta(days=DAYS + 1)
    ids = [each.pk for each in made]
    Message.objects.filter(conversation_id__in=ids).update(created_at=then, updated_at=then)
    Conversation.objects.filter(pk__in=ids).update(updated_at=then)


@pytest.fixture
def conversations(user: User, other_user: User) -> dict[str, Conversation]:
    """One of each case: old, old of another user, old and deleted, recent, old with an
    answer streaming, and old but with a newer message than its own last activity says."""
    made = {
        "old": conversation(user, "Old", idle_days=DAYS + 5),
        "theirs": conversation(other_user, "Theirs", idle_days=DAYS + 1),
        "deleted": conversation(user, "Deleted", idle_days=DAYS + 90),
        "recent": conversation(user, "Recent", idle_days=DAYS - 1),
        "streaming": conversation(user, "Streaming", idle_days=DAYS + 5, streaming=True),
        "newer_message": conversation(user, "Newer message", idle_days=DAYS + 5),
    }
    Conversation.objects.filter(pk=made["deleted"].pk).update(
        deleted_at=timezone.now() - timedelta(days=DAYS + 60)
    )
    Message.objects.create(conversation=made["newer_message"], role="user", content="Still here")
    return made


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_conversations", *args, stdout=out)
    return out.getvalue()


def counts() -> tuple[int, int]:
    return Conversation.objects.count(), Message.objects.count()


def test_a_dry_run_counts_the_old_ones_and_deletes_nothing(
    conversations: dict[str, Conversation],
) -> None:
    before = counts()

    output = purge("--older-than", str(DAYS))

    assert output == (
        "Dry run: 3 conversation(s) and 6 message(s) with no activity for 30 day(s) would be "
        "purged. Nothing was deleted; run again with --apply to delete them.\n"
    )
    assert counts() == before == (6, 13)


def test_apply_deletes_exactly_the_old_ones_with_their_messages(
    conversations: dict[str, Conversation],
) -> None:
    output = purge("--older-than", str(DAYS), "--apply")

    assert output == "Purged 3 conversation(s) and 6 message(s) with no activity for 30 day(s).\n"
    gone = {"old", "theirs", "deleted"}
    left = set(Conversation.objects.values_list("title", flat=True))
    assert left == {"Recent", "Streaming", "Newer message"}
    for name in gone:
        assert not Message.objects.filter(conversation_id=conversations[name].pk).exists()
    for name in conversations.keys() - gone:
        assert Message.objects.filter(conversation_id=conversations[name].pk).count() >= 2
    streaming = Message.objects.get(conversation=conversations["streaming"], role="assistant")
    assert (streaming.status, streaming.content) == ("streaming", "So far")  # not touched

    assert purge("--older-than", str(DAYS), "--apply").startswith("Purged 0 conversation(s)")


def test_days_may_be_a_fraction(user: User) -> None:
    conversation(user, "Hours old", idle_days=0.5)

    assert purge("--older-than", "0.25").startswith("Dry run: 1 conversation(s) and 2 message(s)")
    assert purge("--older-than", "1").startswith("Dry run: 0 conversation(s)")


@pytest.mark.parametrize("days", ["0", "-3", "ninety", "", "nan", "inf", "36501"])
def test_days_must_be_a_positive_number(conversations: dict[str, Conversation], days: str) -> None:
    before = counts()

    with pytest.raises(CommandError) as refused:
        purge("--older-than", days, "--apply")

    assert str(refused.value) == (
        f"--older-than must be a positive number of days (at most 36500), not {days!r}."
    )
    assert counts() == before


def test_days_are_required() -> None:
    with pytest.raises(CommandError, match="--older-than"):
        purge("--apply")


def waiting_on_locks() -> int:
    """How many other sessions of the test database wait for a lock now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        (waiting,) = cursor.fetchone()
    return int(waiting)


def in_thread(work: Callable[[], None]) -> threading.Thread:
    """Run ``work`` in a thread of its own, with a database connection of its own."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def holding(lock: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    """A transaction that takes ``lock`` and holds it until the event returned is set."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            lock()
            taken.set()
            release.wait(30)

    thread = in_thread(hold)
    assert taken.wait(30)
    return thread, release


# What the purge does against answers starting meanwhile rests on PostgreSQL's row locks:
# SQLite runs one writer at a time, so these cannot happen there.
ROW_LOCKS = pytest.mark.usefixtures("postgresql")


@ROW_LOCKS
def test_an_answer_started_before_the_purge_keeps_its_conversation(user: User) -> None:
    old = conversation(user, "Old", idle_days=DAYS + 1)

    def start_answer() -> None:
        # As every start of an answer does (may_answer): the owner's lock, then the
        # answer's row, written and not yet committed.
        lock_owner(user.pk)
        Message.objects.create(conversation=old, role="assistant", status="streaming")

    answer, commit = holding(start_answer)
    output: list[str] = []
    purger = in_thread(lambda: output.append(purge("--older-than", str(DAYS), "--apply")))
    poll_until(lambda: waiting_on_locks() >= 1, "the purge waiting for the starting answer", 30)
    commit.set()
    answer.join(30)
    purger.join(30)

    assert output == ["Purged 0 conversation(s) and 0 message(s) with no activity for 30 day(s).\n"]
    assert Message.objects.filter(conversation=old, status="streaming").exists()


@ROW_LOCKS
def test_an_answer_starting_as_the_purge_runs_finds_its_conversation_gone(user: User) -> None:
    old = conversation(user, "Old", idle_days=DAYS + 1)
    # The purge is held once it has its owners' locks, at the conversation's row.
    row, release = holding(
        lambda: list(Conversation.objects.select_for_update().filter(pk=old.pk).values("pk"))
    )
    output: list[str] = []
    purger = in_thread(lambda: output.append(purge("--older-than", str(DAYS), "--apply")))
    poll_until(lambda: waiting_on_locks() >= 1, "the purge waiting for the row", 30)
    refused: list[Exception] = []

    def post() -> None:
        try:
            do_post_user_message(old, "Just asked", uuid.uuid4())
        except Exception as exc:
            refused.append(exc)

    starter = in_thread(post)
    poll_until(lambda: waiting_on_locks() >= 2, "the new answer waiting too", 30)
    release.set()
    row.join(30)
    purger.join(30)
    starter.join(30)

    assert output == ["Purged 1 conversation(s) and 2 message(s) with no activity for 30 day(s).\n"]
    (error,) = refused
    assert isinstance(error, ConversationGone), repr(error)
    assert str(error) == "This conversation was deleted."
    assert not Conversation.objects.filter(pk=old.pk).exists()
    assert not Message.objects.filter(content="Just asked").exists()


def ids_named(sql: str) -> int:
    """How many ids (UUIDs, hyphenated or not, as each database spells them) ``sql`` names."""
    return len(re.findall(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", sql))


def test_apply_purges_in_batches_until_none_is_left(user: User, other_user: User) -> None:
    count = 2 * PURGE_BATCH_SIZE + 7
    many_old(user, count - 10)
    many_old(other_user, 10)
    recent = conversation(user, "Recent", idle_days=1)

    with CaptureQueriesContext(connection) as dry_run:
        output = purge("--older-than", str(DAYS))
    assert output.startswith(f"Dry run: {count} conversation(s) and {count} message(s)")
    # The database's time, then one count; nothing written, nothing locked.
    assert len(dry_run.captured_queries) == 2
    assert not [q for q in dry_run.captured_queries if "FOR UPDATE" in q["sql"]]

    with CaptureQueriesContext(connection) as applied:
        output = purge("--older-than", str(DAYS), "--apply")

    assert output.startswith(f"Purged {count} conversation(s) and {count} message(s)")
    assert list(Conversation.objects.values_list("pk", flat=True)) == [recent.pk]
    assert Message.objects.count() == 2
    # A batch at a time, until one finds none left.
    batches = [q for q in applied.captured_queries if f"LIMIT {PURGE_BATCH_SIZE}" in q["sql"]]
    assert len(batches) == 4
    assert max(ids_named(q["sql"]) for q in applied.captured_queries) <= PURGE_BATCH_SIZE


@ROW_LOCKS
def test_one_purge_keeps_one_cutoff_however_long_it_runs(user: User, other_user: User) -> None:
    """The cutoff is the database's time when the purge began, not when a batch runs."""
    conversation(other_user, "Old", idle_days=DAYS + 1)
    # Idle for longer than DAYS but for a message that becomes that old a moment from now;
    # its id comes after the other's, so a later statement of the purge looks at it.
    kept = Conversation.objects.create(owner=user, title="Kept", pk=uuid.UUID(int=2**128 - 1))
    newer = database_now() - timedelta(days=DAYS) + timedelta(seconds=3)
    Message.objects.create(conversation=kept, role="user", content="Almost old", created_at=newer)
    Conversation.objects.filter(pk=kept.pk).update(
        updated_at=timezone.now() - timedelta(days=DAYS + 5)
    )
    # The purge is held at the first conversation's owner until the message is old too.
    owner, release = holding(lambda: lock_owner(other_user.pk))
    output: list[str] = []
    purger = in_thread(lambda: output.append(purge("--older-than", str(DAYS), "--apply")))
    poll_until(lambda: waiting_on_locks() >= 1, "the purge waiting for the owner", 30)
    poll_until(
        lambda: database_now() - timedelta(days=DAYS) > newer + timedelta(seconds=0.5),
        "the message growing older than the days asked",
        30,
    )
    release.set()
    owner.join(30)
    purger.join(30)

    assert output == ["Purged 1 conversation(s) and 2 message(s) with no activity for 30 day(s).\n"]
    assert Conversation.objects.filter(pk=kept.pk).exists()
    assert Message.objects.filter(conversation=kept).count() == 1


def test_announcing_stops_at_the_first_channel_layer_failure(
    user: User, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    count = PURGE_BATCH_SIZE + 1
    many_old(user, count)
    own_redis.kill()
    failures = "chatsite_channel_layer_send_failures_total"
    before = metrics.REGISTRY.get_sample_value(failures) or 0

    with (
        override_settings(CHANNEL_LAYERS={"default": redis_layer([own_redis.url], "core")}),
        caplog.at_level(logging.WARNING, logger="streaming"),
    ):
        output = purge("--older-than", str(DAYS), "--apply")

    assert output.startswith(f"Purged {count} conversation(s) and {count} message(s)")
    assert not Conversation.objects.exists()  # deleted all the same
    # The first send failed, and nothing more was tried: with Redis down each would have
    # waited SEND_TIMEOUT_SECONDS.
    assert metrics.REGISTRY.get_sample_value(failures) == before + 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("Could not send chat.deleted to conv.")
    assert warnings[1] == (
        "The channel layer failed: this process sends no more events. Open tabs find out at "
        "their next frame or reload."
    )


async def test_open_tabs_of_a_purged_conversation_are_told(user: User, connect: Any) -> None:
    old = await sync_to_async(conversation)(user, "Old", idle_days=DAYS + 1)
    recent = await sync_to_async(conversation)(user, "Recent", idle_days=1)
    on_old = await connect(old.id, user)
    on_recent = await connect(recent.id, user)

    await sync_to_async(purge)("--older-than", str(DAYS), "--apply")

    told = (await receive_until(on_old, "deleted"))[-1]
    assert told == {"type": "deleted", "message": "This conversation was deleted."}
    removed = (await receive_until(on_recent, "conversation_removed"))[-1]
    assert removed == {"type": "conversation_removed", "conversation_id": str(old.id)}
    # A frame sent after the purge: had the recent one been purged too, its news came first.
    await to_async(do_rename)(recent, "Renamed")
    heard = await receive_until(on_recent, "title")
    assert [f["type"] for f in heard].count("conversation_removed") == 0
    assert "deleted" not in [f["type"] for f in heard]
    assert await Conversation.objects.filter(pk=recent.pk).aexists()
    await on_old.disconnect()
    await on_recent.disconnect()


def test_many_expired_deletes_are_purged_a_batch_at_a_time(user: User) -> None:
    """No statement names more than PURGE_BATCH_SIZE of them: SQLite refuses a statement of
    more than 32766 parameters (PostgreSQL of 65535)."""
    count = 2 * PURGE_BATCH_SIZE + 1
    many_old(user, count)
    Conversation.objects.update(deleted_at=timezone.now() - timedelta(days=1))
    kept = conversation(user, "Not deleted", idle_days=DAYS + 1)

    with CaptureQueriesContext(connection) as purging:
        assert do_purge_deleted() == count

    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.pk]
    assert Message.objects.count() == 2
    named = [ids_named(query["sql"]) for query in purging.captured_queries]
    assert 0 < max(named) <= PURGE_BATCH_SIZE
