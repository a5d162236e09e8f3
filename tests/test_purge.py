"""`manage.py purge_conversations`: retention. A dry run counts and writes nothing; --apply
deletes the conversations idle for longer than DAYS with their messages, deleted ones too,
and never one whose answer is still streaming."""

import threading
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from streaming import services
from streaming.models import Conversation, Message
from streaming.services.quotas import lock_owner
from tests.conftest import receive_until

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


def waiting_on_a_lock() -> bool:
    """Whether some other session of the test database waits for a row lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        (waiting,) = cursor.fetchone()
    return bool(waiting)


def test_an_answer_starting_as_the_purge_runs_keeps_its_conversation(user: User) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite runs one writer at a time")
    old = conversation(user, "Old", idle_days=DAYS + 1)
    started, commit = threading.Event(), threading.Event()
    output: list[str] = []

    def start_answer() -> None:
        # As every start of an answer does: the owner's lock, then the answer's row, written
        # and not yet committed.
        with transaction.atomic():
            lock_owner(user.pk)
            Message.objects.create(conversation=old, role="assistant", status="streaming")
            started.set()
            commit.wait(30)
        connection.close()

    def run_purge() -> None:
        output.append(purge("--older-than", str(DAYS), "--apply"))
        connection.close()

    answer = threading.Thread(target=start_answer)
    answer.start()
    assert started.wait(30)
    purger = threading.Thread(target=run_purge)
    purger.start()
    deadline = time.monotonic() + 30
    while not waiting_on_a_lock():  # the purge waits for the answer's transaction
        assert time.monotonic() < deadline, "the purge never waited for the starting answer"
        time.sleep(0.02)
    commit.set()
    answer.join(30)
    purger.join(30)

    assert output == ["Purged 0 conversation(s) and 0 message(s) with no activity for 30 day(s).\n"]
    assert Message.objects.filter(conversation=old, status="streaming").exists()


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
    await services.to_async(services.do_rename)(recent, "Renamed")
    heard = await receive_until(on_recent, "title")
    assert [f["type"] for f in heard].count("conversation_removed") == 0
    assert "deleted" not in [f["type"] for f in heard]
    assert await Conversation.objects.filter(pk=recent.pk).aexists()
    await on_old.disconnect()
    await on_recent.disconnect()
