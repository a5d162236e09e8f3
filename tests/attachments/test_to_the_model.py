"""Attachments on the socket: a message names its files, and the model receives them as
OpenAI-compatible vision servers take them (asserted by the simulator's `sim:parts=1`, which
answers with what it received); edits keep them; a model that cannot see is refused before
anything is written; nothing that is not the owner's to attach goes anywhere."""

import base64
import hashlib
import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from PIL import Image

from streaming.models import Attachment, Conversation, Message, Provider, ProviderModel
from streaming.simulator import SimulatorThread
from tests.support.files import SECRET, pdf, png, upload, words
from tests.support.frames import receive_until, user_message

pytestmark = pytest.mark.django_db(transaction=True)

Connect = Callable[..., Any]


def carrying(content: str, ids: list[str], **fields: Any) -> dict[str, Any]:
    return {**user_message(content), "attachments": ids, **fields}


async def uploaded(user: User, name: str, data: bytes, conversation: Any = None) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        client = Client()
        client.force_login(user)
        status, answer = upload(client, name, data, conversation)
        assert status == 201, answer
        return dict(answer["attachment"])

    return await sync_to_async(run)()


def last_request(simulator: SimulatorThread, marker: str) -> dict[str, Any]:
    """The newest request to the model whose last message mentions ``marker``."""
    for request in reversed(simulator.requests):
        if marker in str(request["messages"][-1]["content"]):
            return dict(request)
    raise AssertionError(f"no request carried {marker}")


async def test_the_model_receives_an_image_as_a_part_without_its_metadata_and_a_pdf_as_text(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = uuid.uuid4().hex
    image = await uploaded(user, "screenshot.png", png(), conversation.pk)
    report = await uploaded(
        user, "report.pdf", pdf(words(f"Revenue rose {marker}")), conversation.pk
    )
    tab = await connect(conversation.id, user)
    await tab.send_json_to(
        carrying(f"what is this? {marker} sim:parts=1", [image["id"], report["id"]])
    )
    frames = await receive_until(tab, "done")
    await tab.disconnect()

    message = next(f for f in frames if f["type"] == "message")["message"]
    assert [a["id"] for a in message["attachments"]] == [image["id"], report["id"]]
    assert message["attachments"][0]["url"] == f"/attachments/{image['id']}/"
    sent = last_request(simulator, marker)["messages"][-1]["content"]
    assert isinstance(sent, list)
    text, picture = sent
    assert text["type"] == "text"
    assert '<file name="report.pdf">' in text["text"]
    assert f"Revenue rose {marker}" in text["text"]
    assert text["text"].endswith(f"what is this? {marker} sim:parts=1")
    assert picture["type"] == "image_url"
    header, encoded = picture["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    data = base64.b64decode(encoded)
    assert SECRET.encode() not in data
    assert Image.open(io.BytesIO(data)).size == (64, 48)
    stored = await Attachment.objects.aget(pk=image["id"])
    assert hashlib.sha256(data).hexdigest() == stored.sha256
    # The simulator says what it received: the same bytes.
    answer = frames[-1]["message"]["content"]
    assert f"part 2: image_url image/png {len(data)} bytes sha256={stored.sha256}" in answer
    saved = await Message.objects.aget(pk=message["id"])
    assert (
        saved.attachment_tokens
        == stored.tokens + (await Attachment.objects.aget(pk=report["id"])).tokens
    )


async def test_a_message_of_files_alone_is_sent_and_titles_its_conversation(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = uuid.uuid4().hex
    notes = await uploaded(user, "notes.py", f"print('{marker}')\n".encode(), conversation.pk)
    tab = await connect(conversation.id, user)
    await tab.send_json_to(carrying("", [notes["id"]]))
    frames = await receive_until(tab, "done")
    await tab.disconnect()

    sent = last_request(simulator, marker)["messages"][-1]["content"]
    assert sent == f"<file name=\"notes.py\">\nprint('{marker}')\n\n</file>"
    assert frames[-1]["status"] == "complete"
    assert (await Conversation.objects.aget(pk=conversation.pk)).title == "notes.py"


async def test_an_edit_keeps_the_files_of_the_message_it_starts_from(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = uuid.uuid4().hex
    notes = await uploaded(user, "notes.txt", f"remember {marker}".encode(), conversation.pk)
    tab = await connect(conversation.id, user)
    await tab.send_json_to(carrying("first", [notes["id"]]))
    first = await receive_until(tab, "done")
    question = next(f for f in first if f["type"] == "message")["message"]
    await tab.send_json_to(
        carrying(f"edited {marker}", [notes["id"]], parent_id=question["parent_id"])
    )
    frames = await receive_until(tab, "done")
    await tab.disconnect()

    edited = next(f for f in frames if f["type"] == "message")["message"]
    assert edited["attachments"] == question["attachments"]
    linked = await sync_to_async(
        lambda: sorted(str(m.pk) for m in Attachment.objects.get(pk=notes["id"]).messages.all())
    )()
    assert linked == sorted([question["id"], edited["id"]])
    assert (
        f"remember {marker}"
        in last_request(simulator, f"edited {marker}")["messages"][-1]["content"]
    )


async def test_images_to_a_model_that_cannot_see_are_refused_with_the_models_that_can(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.OPENAI_VISION = False
    seeing = await Provider.objects.acreate(name="Vision host", base_url="http://127.0.0.1:9/v1")
    await ProviderModel.objects.acreate(provider=seeing, model_id="see-4", vision=True)
    image = await uploaded(user, "a.png", png(), conversation.pk)
    tab = await connect(conversation.id, user)
    await tab.send_json_to(carrying("look", [image["id"]]))
    error = await tab.receive_json_from(timeout=10)
    await tab.disconnect()

    assert (error["type"], error["code"]) == ("error", "no_vision")
    assert "see-4 (Vision host)" in error["message"]
    assert await Message.objects.acount() == 0
    assert not await Attachment.messages.through.objects.aexists()


@pytest.mark.parametrize("whose", ["other user's", "other conversation's", "not an id", "twice"])
async def test_files_not_the_owners_to_attach_here_are_refused_and_nothing_written(
    connect: Connect, conversation: Conversation, user: User, other_user: User, whose: str
) -> None:
    if whose == "other user's":
        theirs = await Conversation.objects.acreate(owner=other_user)
        ids = [(await uploaded(other_user, "x.txt", b"theirs", theirs.pk))["id"]]
    elif whose == "other conversation's":
        mine = await Conversation.objects.acreate(owner=user)
        ids = [(await uploaded(user, "x.txt", b"elsewhere", mine.pk))["id"]]
    elif whose == "not an id":
        ids = ["../../etc/passwd"]
    else:
        ids = [(await uploaded(user, "x.txt", b"here", conversation.pk))["id"]] * 2
    tab = await connect(conversation.id, user)
    await tab.send_json_to(carrying("with this", ids))
    error = await tab.receive_json_from(timeout=10)
    await tab.disconnect()

    assert (error["type"], error["code"]) == ("error", "bad_attachment")
    assert await Message.objects.acount() == 0
    assert not await Attachment.messages.through.objects.aexists()


async def test_too_many_files_are_refused(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.ATTACH_MAX_FILES = 2
    ids = [(await uploaded(user, f"{n}.txt", b"n", conversation.pk))["id"] for n in range(3)]
    tab = await connect(conversation.id, user)
    await tab.send_json_to(carrying("all three", ids))
    error = await tab.receive_json_from(timeout=10)
    await tab.disconnect()

    assert (error["code"], await Message.objects.acount()) == ("too_many_attachments", 0)
    assert "2 files at most" in error["message"]


async def test_a_document_too_long_for_the_context_is_cut_to_fit_and_the_answer_says_so(
    connect: Connect,
    conversation: Conversation,
    user: User,
    simulator: SimulatorThread,
    settings: Any,
) -> None:
    settings.OPENAI_CONTEXT_TOKENS = 500
    marker = uuid.uuid4().hex
    text = f"start {marker} " + "word " * 4000 + "the very end"
    long = await uploaded(user, "long.txt", text.encode(), conversation.pk)
    tab = await connect(conversation.id, user)
    await tab.send_json_to(carrying(f"summarise {marker}", [long["id"]]))
    done = (await receive_until(tab, "done"))[-1]
    await tab.disconnect()

    sent = last_request(simulator, marker)["messages"][-1]["content"]
    assert sent.startswith(f'<file name="long.txt">\nstart {marker}')
    assert "the very end" not in sent
    assert "the rest of long.txt" in sent
    assert sent.endswith(f"summarise {marker}")
    assert len(sent) <= 500 * 4
    assert done["status"] == "complete"
    assert "long.txt is too long for what the model is sent" in done["message"]["error"]


async def test_earlier_files_are_sent_again_with_later_messages_and_with_a_regenerated_answer(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = uuid.uuid4().hex
    image = await uploaded(user, "chart.png", png(), conversation.pk)
    tab = await connect(conversation.id, user)
    await tab.send_json_to(carrying(f"look {marker}", [image["id"]]))
    await receive_until(tab, "done")
    await tab.send_json_to(user_message(f"and now? {marker}-2"))
    second = (await receive_until(tab, "done"))[-1]
    await tab.send_json_to({"type": "retry", "message_id": second["message_id"]})
    await receive_until(tab, "done")
    await tab.disconnect()

    asked = [r for r in simulator.requests if f"{marker}-2" in str(r["messages"][-1]["content"])]
    assert len(asked) == 2  # the answer, then its regenerated version
    for request in asked:
        first_turn = request["messages"][-3]["content"]
        assert [part["type"] for part in first_turn] == ["text", "image_url"]
        assert first_turn[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_a_new_chat_starts_with_files_uploaded_before_it_existed(
    user: User, simulator: SimulatorThread
) -> None:
    marker = uuid.uuid4().hex
    notes = await uploaded(user, "plan.md", f"# Plan {marker}".encode())

    def start() -> Any:
        client = Client()
        client.force_login(user)
        return client.post(
            "/c/new/",
            {"content": "", "client_id": str(uuid.uuid4()), "attachments": [notes["id"]]},
        )

    response = await sync_to_async(start)()
    assert response.status_code == 201, response.content
    attachment = await Attachment.objects.select_related("conversation").aget(pk=notes["id"])
    assert attachment.conversation is not None
    assert str(attachment.conversation.pk) == response.json()["conversation_id"]
    assert attachment.conversation.title == "plan.md"
    question = await Message.objects.aget(conversation=attachment.conversation, role="user")
    assert question.attached[0]["id"] == notes["id"]
