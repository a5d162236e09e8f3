"""Imports and exports of any size, on PostgreSQL: dates the database can store and read
back, a repair of those it could not, the storage quota (on the socket, the draft's POST
and an import), one import per user at a time and a count a day, and exports streamed a
batch of messages at a time."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import DataError, connection
from django.test import AsyncClient, Client, override_settings
from django.test.client import MULTIPART_CONTENT

from streaming.models import Conversation, Import, Message, Quota, Storage
from streaming.services import branch, deletion, exports, imports, storage
from streaming.services.tree import Tree
from tests.support.exports import tiny_messages
from tests.support.frames import receive_until, user_message
from tests.support.users import user_change_form

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgresql")]


def upload(client: Client, body: bytes | str) -> Any:
    data = body.encode() if isinstance(body, str) else body
    return client.post(
        "/import/",
        {"file": SimpleUploadedFile("export.json", data, "application/json")},
        content_type=MULTIPART_CONTENT,
    )


def document(*messages: dict[str, Any], **fields: Any) -> str:
    return json.dumps(
        {
            "format": "chatsite-export",
            "version": 1,
            "conversations": [{"title": "dated", "messages": list(messages), **fields}],
        }
    )


def message(key: str, parent: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": key, "parent_id": parent, "role": "user", "content": f"text {key}", **fields}


def rows() -> tuple[list[Any], list[Any]]:
    """Every conversation and message as stored, to show that nothing was written."""
    return (
        list(Conversation.objects.order_by("pk").values()),
        list(Message.objects.order_by("pk").values()),
    )


# --- dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("2026-03-01T00:10:00+23:59", datetime(2026, 2, 28, 0, 11, tzinfo=UTC)),
        ("2026-03-01T00:00:00-15:30", datetime(2026, 3, 1, 15, 30, tzinfo=UTC)),
        ("2026-03-01T12:00:00+00:00:30.5", datetime(2026, 3, 1, 11, 59, 29, 500000, tzinfo=UTC)),
        ("2026-03-01T12:00:00.1234567+01:00", datetime(2026, 3, 1, 11, 0, 0, 123456, tzinfo=UTC)),
        ("0001-01-01T00:00:00+00:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00-00:01", datetime(1, 1, 1, 0, 1, tzinfo=UTC)),
    ],
    ids=["plus-23-59", "minus-15-30", "offset-seconds", "seven-digits", "year-1", "year-1-west"],
)
def test_dates_with_any_offset_are_stored_in_utc_and_read_back(
    logged_in: Client, admin_client: Client, user: User, written: str, stored: datetime
) -> None:
    response = upload(logged_in, document(message("a", created_at=written), created_at=written))

    assert response.status_code == 302, response.content.decode()
    (saved,) = Message.objects.filter(conversation__owner=user)
    assert saved.created_at == stored
    assert Conversation.objects.get(owner=user).created_at == stored
    # Every page that reads it reads it: the staff's list, the chat page, both exports.
    assert admin_client.get("/admin/streaming/message/").status_code == 200
    conversation = saved.conversation
    assert logged_in.get(f"/c/{conversation.pk}/").status_code == 200
    assert stored.strftime("%Y-%m-%d") in exports.export_markdown(conversation)
    assert json.loads(exports.export_json([conversation]))["conversations"][0]["messages"]


@pytest.mark.parametrize(
    "written",
    ["0001-01-01T00:00:00+00:01", "0001-01-01T00:59:00+01:00", "9999-12-31T23:59:59-00:01"],
    ids=["year-0-by-a-minute", "year-0-by-an-hour", "year-10000"],
)
def test_dates_outside_years_1_to_9999_in_utc_are_listed_and_nothing_is_written(
    logged_in: Client, written: str
) -> None:
    before = rows()
    response = upload(logged_in, document(message("a"), message("b", "a", created_at=written)))

    assert response.status_code == 400
    assert (
        "conversation 1, message 2, created_at: must be between the years 1 and 9999 in UTC."
        in response.content.decode()
    )
    assert rows() == before


def test_repair_dates_reports_then_repairs_rows_no_page_could_read(
    user: User, admin_client: Client
) -> None:
    conversation = Conversation.objects.create(owner=user, title="old import")
    old = Message.objects.create(conversation=conversation, role="user", content="from year 0")
    Message.objects.create(conversation=conversation, role="user", content="fine")
    with connection.cursor() as cursor:  # as an import before this release stored them
        cursor.execute(
            "UPDATE streaming_message SET created_at = '0001-01-01 00:00:00+00'::timestamptz"
            " - interval '1 minute' WHERE id = %s",
            [old.pk],
        )
        cursor.execute(
            "UPDATE streaming_conversation SET updated_at = '9999-12-31 23:59:59+00'::timestamptz"
            " + interval '1 minute' WHERE id = %s",
            [conversation.pk],
        )
    with pytest.raises(DataError):  # psycopg cannot read them back
        list(Message.objects.filter(pk=old.pk))
    admin_client.raise_request_exception = False
    assert admin_client.get("/admin/streaming/message/").status_code == 500

    report = StringIO()
    call_command("repair_dates", stdout=report)
    assert '"streaming_message"."created_at": 1 row(s) unreadable.' in report.getvalue()
    assert '"streaming_conversation"."updated_at": 1 row(s) unreadable.' in report.getvalue()
    with pytest.raises(DataError):  # a report changes nothing
        list(Message.objects.filter(pk=old.pk))

    repair = StringIO()
    call_command("repair_dates", "--apply", stdout=repair)
    assert "1 row(s) repaired" in repair.getvalue()
    assert Message.objects.get(pk=old.pk).created_at == datetime(1, 1, 1, tzinfo=UTC)
    assert Conversation.objects.get(pk=conversation.pk).updated_at.year == 9999
    assert admin_client.get("/admin/streaming/message/").status_code == 200
    again = StringIO()
    call_command("repair_dates", stdout=again)
    assert "nothing to repair" in again.getvalue()


# --- the largest file -------------------------------------------------------------------


# Seconds on an idle machine; a busy one (the whole suite on every core) stretches them.
@pytest.mark.timeout(300)
def test_a_file_of_240000_tiny_messages_is_imported_whole(logged_in: Client, user: User) -> None:
    raw = tiny_messages(240_000)
    assert len(raw) <= 10 * 1024 * 1024  # the default IMPORT_MAX_BYTES

    response = upload(logged_in, raw)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Message.objects.filter(conversation__owner=user, imported=True).count() == 240_000
    assert storage.used(user.pk) == 240_000 == storage.recount(user.pk)


def test_a_problem_after_a_written_batch_leaves_nothing(logged_in: Client, user: User) -> None:
    good = [message(f"m{n}", content="x") for n in range(2500)]  # past two batches of COPY
    before = rows()
    response = upload(logged_in, document(*good, message("bad", parent="nowhere")))

    assert response.status_code == 400
    assert "message 2501, parent_id" in response.content.decode()
    assert rows() == before
    assert Storage.objects.filter(user=user, chars__gt=0).count() == 0


def test_messages_naming_parents_later_in_the_file_keep_their_tree(user: User) -> None:
    # Children first: the rows are written before their parents, linked at the commit.
    (created,) = imports.do_import(
        user,
        document(
            message("c", "b", role="user"),
            message("b", "a", role="assistant"),
            message("a"),
            leaf_id="c",
        ).encode(),
    )
    tree = Tree(created.messages.all())
    assert [m.content for m in tree.branch(created.leaf_id)] == ["text a", "text b", "text c"]


# --- the storage quota ------------------------------------------------------------------


def fill(user: User, chars: int) -> Conversation:
    conversation = Conversation.objects.create(owner=user, title="full")
    Message.objects.create(conversation=conversation, role="user", content="x" * chars)
    return conversation


@override_settings(STORAGE_QUOTA_CHARS=100)
async def test_a_message_past_the_storage_quota_is_refused_on_the_socket(
    user: User, connect: Any
) -> None:
    conversation = await Conversation.objects.acreate(owner=user)
    await Message.objects.acreate(conversation=conversation, role="user", content="x" * 95)
    tab = await connect(conversation.id, user)

    await tab.send_json_to(user_message("this is ten"))
    (error,) = await receive_until(tab, "error")

    assert error["code"] == "storage_full"
    assert "95 of 100 characters" in error["message"]
    assert await Message.objects.filter(conversation=conversation).acount() == 1
    # Counted once, and kept: a refusal rolls back nothing of the count.
    assert (await Storage.objects.aget(user=user)).chars == 95

    # Five characters still fit.
    await tab.send_json_to(user_message("fits!"))
    done = await receive_until(tab, "done")
    assert done[-1]["status"] == "complete"
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    # The message when it was sent, the answer when it ended.
    assert (await Storage.objects.aget(user=user)).chars == 100 + len(answer.content)
    await tab.disconnect()


@override_settings(STORAGE_QUOTA_CHARS=1000)
async def test_a_first_message_past_the_storage_quota_is_refused_and_nothing_is_saved(
    user: User,
) -> None:
    await Quota.objects.acreate(user=user, storage_chars=10)  # the user's own figure wins
    client = AsyncClient()
    await client.aforce_login(user)

    response = await client.post(
        "/c/new/", {"content": "eleven char", "client_id": str(uuid.uuid4())}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "storage_full"
    assert not await Conversation.objects.filter(owner=user).aexists()
    assert not await Message.objects.aexists()


@override_settings(STORAGE_QUOTA_CHARS=50)
def test_an_import_past_the_storage_quota_is_refused_and_nothing_is_written(
    logged_in: Client, user: User
) -> None:
    fill(user, 40)
    before = rows()

    response = upload(logged_in, document(message("a", content="y" * 6), message("b", "a")))

    assert response.status_code == 400
    assert "more message text and attached files than your storage has room for (10 more" in (
        response.content.decode()
    )
    assert rows() == before
    assert storage.used(user.pk) == 40


def test_the_count_follows_messages_answers_imports_and_purges(user: User) -> None:
    conversation = fill(user, 7)
    assert storage.used(user.pk) == 7  # counted from the messages the first time
    imports.do_import(user, document(message("a", content="12345")).encode())
    assert storage.used(user.pk) == 12
    other = Conversation.objects.create(owner=user, title="to purge")
    Message.objects.create(conversation=other, role="user", content="abc")
    storage.add(user.pk, 3)  # as do_post_user_message counts its message
    conversation.delete()  # by hand: the count moves only through the services…
    assert storage.used(user.pk) == 15
    call_command("recount_storage", stdout=StringIO())  # …and recount_storage puts it right
    assert storage.used(user.pk) == 8
    for left in Conversation.objects.filter(owner=user):
        deletion.do_delete_conversation(left)
    with override_settings(DELETE_UNDO_SECONDS=0):
        assert deletion.do_purge_deleted() == 2
    assert storage.used(user.pk) == 0 == storage.recount(user.pk)


def test_the_usage_page_shows_what_is_stored(logged_in: Client, user: User) -> None:
    fill(user, 1234)
    with override_settings(STORAGE_QUOTA_CHARS=5000):
        page = logged_in.get("/usage/").content.decode()
    assert "1,234" in page
    assert "5,000" in page


@override_settings(STORAGE_QUOTA_CHARS=100)
def test_staff_set_a_users_own_storage_quota_in_the_admin(admin_client: Client, user: User) -> None:
    fill(user, 60)
    page = admin_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert "Characters stored" in page

    form = user_change_form(user, **{"quota-0-storage_chars": "50"})
    response = admin_client.post(f"/admin/auth/user/{user.pk}/change/", form)

    assert response.status_code == 302
    assert Quota.objects.get(user=user).storage_chars == 50
    assert storage.room(user.pk) == 0
    page = admin_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert "60 of 50" in page


# --- imports one at a time, a few a day --------------------------------------------------


@pytest.fixture
def import_lock(user: User) -> Iterator[None]:
    """What a running import of ``user``'s holds, from another connection."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        dbname=settings["NAME"],
        password=settings["PASSWORD"] or None,
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [imports._IMPORT_LOCK, user.pk])
        yield


def test_a_second_import_while_one_runs_is_refused_at_once(
    logged_in: Client, import_lock: None
) -> None:
    before = rows()
    response = upload(logged_in, document(message("a")))

    assert response.status_code == 409
    assert "Another import of yours is running" in response.content.decode()
    assert rows() == before


@override_settings(IMPORTS_PER_DAY=2)
def test_imports_past_the_count_of_the_day_are_refused(logged_in: Client, user: User) -> None:
    assert upload(logged_in, document(message("a"))).status_code == 302
    assert upload(logged_in, "not json").status_code == 400  # a refused one counts too
    before = rows()

    response = upload(logged_in, document(message("a")))

    assert response.status_code == 429
    assert "You have imported 2 files today" in response.content.decode()
    assert rows() == before
    assert Import.objects.filter(owner=user).count() == 2
    Import.objects.filter(owner=user).update(started_at=datetime.now(UTC) - timedelta(days=1))
    assert upload(logged_in, document(message("a"))).status_code == 302  # a new day


# --- exports, a batch at a time ---------------------------------------------------------


def long_conversation(user: User, count: int, *, leaf: bool) -> Conversation:
    """``count`` messages in a chain, and an older version of message 3 beside it."""
    conversation = Conversation.objects.create(owner=user, title="long")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    chain: list[Message] = []
    for n in range(count):
        chain.append(
            Message(
                conversation=conversation,
                parent=chain[-1] if chain else None,
                role="user" if n % 2 == 0 else "assistant",
                content=f"message {n}",
                created_at=start + timedelta(seconds=n),
            )
        )
    Message.objects.bulk_create(chain)
    Message.objects.create(
        conversation=conversation,
        parent=chain[1],
        role="user",
        content="the other version",
        created_at=start - timedelta(days=1),
    )
    if leaf:
        Conversation.objects.filter(pk=conversation.pk).update(leaf=chain[-1])
    conversation.refresh_from_db()
    return conversation


@pytest.mark.parametrize("leaf", [True, False], ids=["leaf-named", "newest-branch"])
def test_exports_of_a_long_conversation_stream_what_the_tree_shows(user: User, leaf: bool) -> None:
    conversation = long_conversation(user, 2500, leaf=leaf)
    tree = Tree(conversation.messages.all())
    expected = tree.branch(conversation.leaf_id)

    shown = branch.shown(conversation)
    assert [key for key, _, _ in shown.part(0, len(shown))] == [m.pk for m in expected]
    assert shown.part(2, 1)[0][1:] == (2, 2)  # message 3 is version 2 of 2

    pieces = list(exports.markdown_pieces(conversation))
    assert len(pieces) == 4  # the head, then three batches of at most 1,000 messages
    markdown = "".join(pieces)
    assert markdown.count("\n### ") == 2500
    assert "*Version 2 of 2.*" in markdown
    assert "the other version" not in markdown

    document = json.loads(exports.export_json([conversation]))
    messages = document["conversations"][0]["messages"]
    assert [m["id"] for m in messages] == [str(m.pk) for m in tree.messages]


def test_a_branch_written_out_of_time_order_is_exported_in_its_own_order(user: User) -> None:
    # A hand-written file may give an answer an older time than its question.
    (created,) = imports.do_import(
        user,
        document(
            message("q", created_at="2026-03-01T10:00:00+00:00"),
            message("a", "q", role="assistant", created_at="2026-03-01T09:00:00+00:00"),
            leaf_id="a",
        ).encode(),
    )
    assert not branch.shown(created).in_time_order

    markdown = exports.export_markdown(created)

    assert markdown.index("text q") < markdown.index("text a")


async def test_the_export_pages_stream(user: User) -> None:
    conversation = await Conversation.objects.acreate(owner=user, title="streamed")
    await Message.objects.acreate(conversation=conversation, role="user", content="hello")
    client = AsyncClient()
    await client.aforce_login(user)

    for suffix in ("md", "json"):
        response: Any = await client.get(f"/c/{conversation.pk}/export.{suffix}")
        assert response.status_code == 200
        assert response.streaming
        assert response.is_async
        body = b"".join([piece async for piece in response.streaming_content]).decode()
        assert "hello" in body
