"""Export and import: a conversation as Markdown and JSON, a whole account as one streamed
JSON file, and that file read back strictly, all or nothing, as the importer's own rows."""

import html
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import AsyncClient, Client, override_settings
from django.test.client import MULTIPART_CONTENT
from django.utils import timezone

from streaming.exceptions import ImportRefused
from streaming.models import Conversation, Message
from streaming.services import exports, imports
from streaming.services.answers import INTERRUPTED_MESSAGE
from streaming.views import NOT_FOUND

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def branched(owner: User, title: str = "Trip to Lisbon") -> Conversation:
    """A conversation with a question, two versions of its answer (the second shown), and
    a follow-up; one answer was stopped and one is still streaming."""
    conversation = Conversation.objects.create(
        owner=owner, title=title, system_prompt="Be brief.\nUse metric units.", model="m-1"
    )

    def add(
        parent: Message | None, seconds: int, role: str, content: str, **fields: Any
    ) -> Message:
        return Message.objects.create(
            conversation=conversation,
            parent=parent,
            role=role,
            content=content,
            created_at=T0 + timedelta(seconds=seconds),
            **fields,
        )

    question = add(None, 0, "user", "Where to eat?")
    add(question, 5, "assistant", "Try the **pastéis**.", status="cancelled", model="m-1")
    second = add(
        question,
        9,
        "assistant",
        "Time Out Market.",
        model="m-2",
        finish_reason="stop",
        prompt_tokens=12,
        completion_tokens=30,
    )
    follow_up = add(second, 20, "user", "And after?")
    live = add(follow_up, 21, "assistant", "A walk by", status="streaming", model="m-2")
    Conversation.objects.filter(pk=conversation.pk).update(leaf=live)
    conversation.refresh_from_db()
    return conversation


def upload(client: Client, body: bytes | str, name: str = "export.json") -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = body.encode() if isinstance(body, str) else body
    return client.post(
        "/import/",
        {"file": SimpleUploadedFile(name, data, "application/json")},
        content_type=MULTIPART_CONTENT,
    )


def streamed(response: Any) -> str:
    """The body of an export, read piece by piece as daphne does (each piece's queries on
    a database thread: the test's rows must be committed, ``transaction=True``)."""
    assert response.streaming

    async def read() -> bytes:
        return b"".join([piece async for piece in response.streaming_content])

    return async_to_sync(read)().decode()


def page_text(response: Any) -> str:
    return html.unescape(response.content.decode())


def rows() -> tuple[list[Any], list[Any]]:
    """Every conversation and message as stored, to show that nothing was written."""
    return (
        list(Conversation.objects.order_by("pk").values()),
        list(Message.objects.order_by("pk").values()),
    )


def without_ids(document: dict[str, Any]) -> dict[str, Any]:
    """The export with each id replaced by its message's place, and no export time."""
    conversations = []
    for conversation in document["conversations"]:
        place = {m["id"]: n for n, m in enumerate(conversation["messages"])}
        messages = [
            {**m, "id": place[m["id"]], "parent_id": place.get(m["parent_id"])}
            for m in conversation["messages"]
        ]
        conversations.append(
            {
                **conversation,
                "id": None,
                "leaf_id": place.get(conversation["leaf_id"]),
                "messages": messages,
            }
        )
    return {**document, "exported_at": None, "conversations": conversations}


# --- export -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_markdown_export_reads_as_the_conversation_shows(logged_in: Client, user: User) -> None:
    conversation = branched(user)
    response = logged_in.get(f"/c/{conversation.id}/export.md")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="trip-to-lisbon.md"'
    text = streamed(response)
    assert text.startswith("# Trip to Lisbon\n")
    assert "## System prompt\n\n> Be brief.\n> Use metric units." in text
    assert "### You · 2026-03-01 09:30 UTC" in text
    assert "### Assistant · 2026-03-01 09:30 UTC · m-2" in text
    assert "*Version 2 of 2.*" in text
    assert "Time Out Market." in text
    assert "*12 tokens in · 30 out*" in text
    assert "still being written" in text
    assert "pastéis" not in text  # the other version is noted, not shown


@pytest.mark.django_db(transaction=True)
def test_json_export_has_every_message_of_the_tree(logged_in: Client, user: User) -> None:
    conversation = branched(user)
    response = logged_in.get(f"/c/{conversation.id}/export.json")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="trip-to-lisbon.json"'
    document = json.loads(streamed(response))
    assert document["format"] == "chatsite-export"
    # Without attached files: the plain file of version 1, as before there were any.
    assert document["version"] == exports.PLAIN_VERSION == 1
    assert all("attachments" not in m for m in document["conversations"][0]["messages"])
    (exported,) = document["conversations"]
    assert exported["id"] == str(conversation.id)
    assert exported["system_prompt"] == "Be brief.\nUse metric units."
    assert exported["leaf_id"] == str(conversation.leaf_id)
    by_content = {m["content"]: m for m in exported["messages"]}
    assert len(by_content) == 5
    answer = by_content["Time Out Market."]
    assert answer["parent_id"] == by_content["Where to eat?"]["id"]
    assert (answer["prompt_tokens"], answer["completion_tokens"]) == (12, 30)
    assert (answer["model"], answer["status"]) == ("m-2", "complete")
    assert by_content["Try the **pastéis**."]["status"] == "cancelled"


def test_exports_of_another_users_conversation_are_not_found(
    logged_in: Client, other_user: User
) -> None:
    theirs = branched(other_user, title="private plans")
    for suffix in ("export.md", "export.json"):
        response = logged_in.get(f"/c/{theirs.id}/{suffix}")
        assert response.status_code == 404
        body = response.content.decode()
        assert NOT_FOUND in body
        assert "private plans" not in body


@pytest.mark.django_db(transaction=True)
async def test_account_export_streams_every_own_conversation(user: User, other_user: User) -> None:
    from asgiref.sync import sync_to_async

    mine = await sync_to_async(lambda: [branched(user, f"mine {n}") for n in range(60)])()
    await sync_to_async(branched)(other_user, "not mine")
    client = AsyncClient()
    await sync_to_async(client.force_login)(user)

    response = await client.get("/export/")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"].startswith(
        'attachment; filename="chatsite-conversations-'
    )
    pieces = [piece async for piece in response.streaming_content]  # type: ignore[attr-defined]
    assert len(pieces) > 3  # written a batch at a time, not built whole
    document = json.loads(b"".join(pieces))
    assert {c["title"] for c in document["conversations"]} == {c.title for c in mine}
    assert all(len(c["messages"]) == 5 for c in document["conversations"])


@pytest.mark.django_db(transaction=True)
def test_account_export_of_no_conversations_is_a_valid_empty_file(user: User) -> None:
    import asyncio

    async def read() -> bytes:
        return "".join(
            [piece async for piece in exports.streamed(exports.account_pieces(user))]
        ).encode()

    document = json.loads(asyncio.run(read()))
    assert document["conversations"] == []
    assert imports.parse(json.dumps(document).encode()) == 0


# --- import -----------------------------------------------------------------------------


def test_import_round_trip_gives_the_same_export_with_new_ids(
    logged_in: Client, user: User, other_user: User
) -> None:
    original = branched(other_user)
    exported = exports.export_json([original])

    response = upload(logged_in, exported)

    assert response.status_code == 302
    imported = Conversation.objects.get(owner=user)
    again = json.loads(exports.export_json([imported]))
    before = json.loads(exported)
    # The stream in the file is long gone: imported as interrupted, never as a live one.
    live = next(m for m in before["conversations"][0]["messages"] if m["status"] == "streaming")
    live.update(status="interrupted", error=INTERRUPTED_MESSAGE)
    # The file's model is not taken: the import goes on with the importer's default.
    before["conversations"][0]["model"] = ""
    assert without_ids(again) == without_ids(before)
    new_ids = {m["id"] for m in again["conversations"][0]["messages"]}
    assert not new_ids & {
        str(pk) for pk in Message.objects.filter(conversation=original).values_list("pk", flat=True)
    }
    assert imported.pk != original.pk
    # No files: an empty list, as JSON (PostgreSQL's COPY once wrote `{}`, an object).
    assert {tuple(m.attached) for m in imported.messages.all()} == {()}
    assert all(m.attached == [] for m in imported.messages.all())
    assert "Imported 1 conversation." in logged_in.get("/").content.decode()


def test_import_of_an_account_export_adds_every_conversation(user: User) -> None:
    first, second = branched(user, "one"), branched(user, "two")
    document = exports.export_json([first, second])

    created = imports.do_import(user, document.encode())

    assert sorted(c.title for c in created) == ["one", "two"]
    assert Conversation.objects.filter(owner=user).count() == 4
    assert Message.objects.filter(conversation__in=created).count() == 10
    assert not Message.objects.filter(conversation__in=created, status="streaming").exists()


def test_forged_ids_of_another_users_rows_create_new_rows_and_touch_nothing(
    logged_in: Client, user: User, other_user: User
) -> None:
    theirs = branched(other_user, "theirs")
    before = rows()
    document = json.loads(exports.export_json([theirs]))  # their ids, as if forged
    document["conversations"][0]["title"] = "overwritten?"

    response = upload(logged_in, json.dumps(document))

    assert response.status_code == 302
    theirs_after = [r for r in rows()[0] if r["owner_id"] == other_user.pk]
    assert theirs_after == [r for r in before[0] if r["owner_id"] == other_user.pk]
    assert Message.objects.filter(conversation=theirs).count() == 5
    mine = Conversation.objects.get(owner=user)
    assert mine.title == "overwritten?"
    assert mine.pk != theirs.pk
    assert Message.objects.filter(conversation=mine).count() == 5


def test_a_parent_naming_another_users_message_is_refused(
    logged_in: Client, other_user: User
) -> None:
    theirs = branched(other_user)
    their_message = Message.objects.filter(conversation=theirs).first()
    assert their_message is not None
    document = single(
        [
            message("a", parent=str(their_message.pk)),
        ]
    )
    before = rows()

    response = upload(logged_in, json.dumps(document))

    assert response.status_code == 400
    assert f'"{their_message.pk}" is no message of this conversation' in page_text(response)
    assert rows() == before


def message(key: str, parent: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": key, "parent_id": parent, "role": "user", "content": f"text {key}", **fields}


def single(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "format": "chatsite-export",
        "version": 1,
        "conversations": [{"title": "hand-made", "messages": messages, **fields}],
    }


def refusal(body: str | bytes) -> list[str]:
    with pytest.raises(ImportRefused) as refused:
        imports.parse(body.encode() if isinstance(body, str) else body)
    return refused.value.problems


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON: lexical error: invalid string in json text, near “{not"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"format": "chatsite-export", "version": 1, "conversations": [NaN]}', "not valid JSON"),
        ("[]", "must be an object, not a list"),
        ('{"format": "other", "version": 1, "conversations": []}', "not an export of this site"),
        ('{"format": "chatsite-export", "version": 3, "conversations": []}', "format version 3"),
        ('{"format": "chatsite-export", "version": true, "conversations": []}', "version true"),
        ('{"format": "chatsite-export", "version": 1, "conversations": {}}', "must be a list"),
        ('{"format": "chatsite-export", "version": 1}', 'the field "conversations" is missing'),
        (
            '{"format": "chatsite-export", "version": 1, "conversations": [], "x": 1}',
            'unknown field "x"',
        ),
        ("[" * 100_000 + "]" * 100_000, "must be an object, not a list"),
        (
            '{"format": "chatsite-export", "version": 1, "conversations": '
            + "[" * 100_000
            + "]" * 100_000
            + "}",
            "nest deeper than an export's",
        ),
        ('{"format": "chatsite-export", "version": 1, "conversations": []} []', "trailing garbage"),
        ('{"format": "chatsite-export", "version": 1, "conversations": [', "not valid JSON"),
    ],
)
def test_files_that_are_not_exports_are_refused(body: str | bytes, expected: str) -> None:
    problems = refusal(body)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["conversations"][0].update(title=5),
            "conversation 1, title: must be text, not a number",
        ),
        (
            lambda d: d["conversations"][0].update(messages="x"),
            "messages: must be a list, not text",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(role="admin"),
            "message 1, role: must be one of",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(content=["x"]),
            "message 1, content: must be text, not a list",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(content="  "),
            "message 1, content: must not be empty",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(prompt_tokens="12"),
            "prompt_tokens: must be a whole number or null, not text",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(prompt_tokens=True),
            "not true or false",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(completion_tokens=-1),
            "must be between 0",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(status="done"),
            "status: must be one of",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(created_at="yesterday"),
            "created_at: must be a date and time",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(created_at="2026-03-01T09:30:00"),
            "with its offset",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(content="nul \x00"),
            "cannot be saved",
        ),
        (
            lambda d: d["conversations"][0]["messages"][0].update(content="half \ud800"),
            "cannot be saved",
        ),
        (lambda d: d["conversations"][0]["messages"][0].update(extra=1), 'unknown field "extra"'),
        (lambda d: d["conversations"][0]["messages"][0].pop("id"), 'the field "id" is missing'),
        (
            lambda d: d["conversations"][0]["messages"][1].update(id="a"),
            'two messages have the id "a"',
        ),
        (
            lambda d: d["conversations"][0]["messages"][1].update(parent_id="zzz"),
            '"zzz" is no message of this conversation',
        ),
        (lambda d: d["conversations"][0].update(leaf_id="zzz"), 'leaf_id: "zzz" is no message'),
        (
            lambda d: d["conversations"][0]["messages"][0].update(parent_id="b"),
            "follows itself, through its parents",
        ),
        (lambda d: d["conversations"][0]["messages"][0].update(parent_id="a"), "follows itself"),
        (lambda d: d["conversations"].append(7), "conversation 2: must be an object, not a number"),
    ],
)
def test_each_problem_in_a_file_is_named_and_nothing_is_written(
    logged_in: Client, change: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    document = single([message("a"), message("b", parent="a", role="assistant")])
    change(document)
    before = rows()

    response = upload(logged_in, json.dumps(document))

    assert response.status_code == 400
    body = response.content.decode()
    assert "The file was not imported" in body
    assert expected in page_text(response), body
    assert rows() == before


@override_settings(MAX_MESSAGE_CHARS=10, STREAM_MAX_ANSWER_CHARS=20, MAX_SYSTEM_PROMPT_CHARS=5)
def test_texts_longer_than_live_messages_may_be_are_refused() -> None:
    document = single(
        [
            message("a", content="x" * 11),
            message("b", parent="a", role="assistant", content="y" * 21),
            message("c", parent="b", content="x" * 10),
            message("d", parent="c", role="assistant", content="y" * 20),
        ],
        system_prompt="z" * 6,
    )
    problems = refusal(json.dumps(document))
    # In the order of the file: its messages come before its system prompt.
    assert problems == [
        "conversation 1, message 1, content: is 11 characters long; the limit is 10.",
        "conversation 1, message 2, content: is 21 characters long; the limit is 20.",
        "conversation 1, system_prompt: is 6 characters long; the limit is 5.",
    ]


def test_a_problem_late_in_a_file_writes_none_of_what_came_before(
    logged_in: Client, user: User
) -> None:
    good = json.loads(exports.export_json([branched(user)]))["conversations"][0]
    document = single([message("a")])
    document["conversations"] = [good, good, {"messages": [message("x", parent="missing")]}]
    before = rows()

    response = upload(logged_in, json.dumps(document))

    assert response.status_code == 400
    assert "conversation 3, message 1, parent_id" in response.content.decode()
    assert rows() == before


def test_many_problems_are_listed_up_to_a_limit() -> None:
    document = single([message(str(n), parent="nowhere") for n in range(50)])
    problems = refusal(json.dumps(document))
    assert len(problems) == 21
    assert problems[-1] == "… and 30 more."


@override_settings(IMPORT_MAX_BYTES=100)
def test_an_upload_declared_far_over_the_limit_is_refused_before_it_is_parsed(
    logged_in: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.http.multipartparser import MultiPartParser

    def parse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the upload was parsed")

    monkeypatch.setattr(MultiPartParser, "parse", parse)
    before = rows()
    response = upload(logged_in, "x" * (100 + 64 * 1024 + 1))

    assert response.status_code == 413
    assert "the largest file that can be imported is 100" in response.content.decode()
    assert rows() == before


@override_settings(IMPORT_MAX_BYTES=100)
def test_a_file_over_the_size_limit_is_refused_unparsed(logged_in: Client) -> None:
    before = rows()
    response = upload(logged_in, json.dumps(single([message("a")])) + " " * 100)

    assert response.status_code == 400
    assert "the largest that can be imported is 100" in response.content.decode()
    assert rows() == before


def test_import_without_a_file_says_so(logged_in: Client) -> None:
    response = logged_in.post("/import/", {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_import_needs_a_login_and_a_post(client: Client) -> None:
    assert client.post("/import/")["Location"].startswith("/login/")
    assert client.get("/export/")["Location"].startswith("/login/")
    client.force_login(User.objects.create_user("bob"))
    assert client.get("/import/").status_code == 405


def test_a_minimal_hand_written_file_is_imported_with_defaults(user: User) -> None:
    (created,) = imports.do_import(user, json.dumps(single([message("a")])).encode())
    (only,) = Message.objects.filter(conversation=created)
    assert (only.role, only.content, only.status, only.parent_id) == (
        "user",
        "text a",
        "complete",
        None,
    )
    assert created.title == "hand-made"
    assert created.owner == user
    assert uuid.UUID(str(only.pk))


def test_admin_exports_selected_conversations_as_the_same_file(
    django_user_model: Any, user: User, other_user: User
) -> None:
    from tests.support.users import PASSWORD

    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("root", password=PASSWORD))
    chosen, also = branched(user, "chosen"), branched(other_user, "also")
    branched(user, "left out")

    # Searched on message text, which joins messages: each conversation still comes once.
    response = staff.post(
        "/admin/streaming/conversation/?q=eat",
        {"action": "export_selected", "_selected_action": [chosen.pk, also.pk]},
    )

    assert response["Content-Disposition"] == 'attachment; filename="conversations.json"'
    document = response.json()
    assert sorted(c["title"] for c in document["conversations"]) == ["also", "chosen"]
    assert imports.parse(response.content) == 2


def test_versions_without_times_keep_the_files_order(user: User) -> None:
    document = single(
        [
            message("q"),
            message("v1", parent="q", role="assistant", content="first version"),
            message("v2", parent="q", role="assistant", content="second version"),
        ]
    )
    (created,) = imports.do_import(user, json.dumps(document).encode())

    exported = json.loads(exports.export_json([created]))["conversations"][0]["messages"]
    assert [m["content"] for m in exported] == ["text q", "first version", "second version"]
    # No leaf in the file: the newest branch is shown, ending at the last version.
    markdown = exports.export_markdown(created)
    assert "second version" in markdown
    assert "*Version 2 of 2.*" in markdown


@override_settings(LIMIT_MESSAGES_PER_MINUTE=3)
def test_imported_answers_take_no_turn_of_the_rate_limit_and_none_is_from_the_future(
    user: User,
) -> None:
    from streaming.services import quotas

    turns: list[dict[str, Any]] = []
    for n in range(5):
        turns.append(message(f"q{n}", turns[-1]["id"] if turns else None))
        turns.append(
            message(f"a{n}", f"q{n}", role="assistant", created_at="2099-01-01T00:00:00+00:00")
        )
    before = timezone.now()

    (created,) = imports.do_import(
        user, json.dumps(single(turns, updated_at="2099-01-01T00:00:00+00:00")).encode()
    )

    quotas.check_new_answer(user.pk, timezone.now(), quotas.standing(user.pk))  # none counts
    created.refresh_from_db()
    assert created.updated_at <= timezone.now()
    latest = Message.objects.filter(conversation=created).latest("created_at").created_at
    assert before <= latest <= timezone.now()
