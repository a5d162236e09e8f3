"""Versions: edits and regenerated answers as a tree, the branch shown, and what is sent.

Over the real ASGI application, the channel layers and the simulator (tests/conftest.py);
the migration from a linear history runs Django's real migration executor.
"""

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from streaming.models import Conversation, Message
from streaming.services.tree import Tree
from streaming.simulator import SimulatorThread
from tests.support.assembler import Assembler
from tests.support.frames import receive_until, user_message

pytestmark = pytest.mark.django_db(transaction=True)

Connect = Callable[..., Any]


def sent_for(simulator: SimulatorThread, marker: str) -> list[list[dict[str, str]]]:
    """The `messages` of every request to the model whose last message holds ``marker``."""
    return [r["messages"] for r in simulator.requests if marker in r["messages"][-1]["content"]]


async def turn(
    communicator: WebsocketCommunicator, content: str, **fields: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send a message (with extra frame fields such as parent_id); its echo and its `done`."""
    await communicator.send_json_to({**user_message(content), **fields})
    frames = await receive_until(communicator, "done")
    (echo,) = [f for f in frames if f["type"] == "message"]
    return echo["message"], frames[-1]


async def two_turns(
    communicator: WebsocketCommunicator, marker: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    one, first = await turn(communicator, f"one {marker} sim:tokens=3")
    two, second = await turn(communicator, f"two {marker} sim:tokens=3")
    return one, first["message"], two, second["message"]


async def leaf_of(conversation: Conversation) -> str:
    await conversation.arefresh_from_db(fields=["leaf"])
    return str(conversation.leaf_id)


async def test_an_edit_is_a_version_and_the_model_is_sent_only_its_branch(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = uuid.uuid4().hex
    communicator = await connect(conversation.id, user)
    one, first, two, second = await two_turns(communicator, marker)

    edited, done = await turn(
        communicator, f"two, edited {marker} sim:tokens=3", parent_id=first["id"]
    )
    await communicator.disconnect()

    assert edited["parent_id"] == two["parent_id"] == first["id"]
    assert done["message"]["parent_id"] == edited["id"]
    assert sent_for(simulator, f"two, edited {marker}") == [
        [
            {"role": "user", "content": one["content"]},
            {"role": "assistant", "content": first["content"]},
            {"role": "user", "content": edited["content"]},
        ]
    ]
    assert await leaf_of(conversation) == done["message_id"]
    # Nothing was changed or removed: the old turn is the other version.
    old = await Message.objects.aget(pk=two["id"])
    assert old.content == two["content"]
    assert await conversation.messages.acount() == 6

    later = await connect(conversation.id, user)
    snapshot = later.snapshot
    await later.disconnect()
    assert snapshot["leaf_id"] == done["message_id"]
    # A window of the branch shown, the old turn as a version without its text (what follows
    # it comes when it is switched to), and the count of every message.
    assert [m["id"] for m in snapshot["messages"]] == [
        one["id"],
        first["id"],
        edited["id"],
        done["message_id"],
    ]
    assert [(v["id"], v["parent_id"]) for v in snapshot["versions"]] == [(two["id"], first["id"])]
    assert "content" not in snapshot["versions"][0]
    assert snapshot["count"] == 6
    assert second["id"] not in json.dumps(snapshot)


async def test_editing_the_first_message_starts_the_conversation_over(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = uuid.uuid4().hex
    communicator = await connect(conversation.id, user)
    await two_turns(communicator, marker)

    edited, done = await turn(communicator, f"first again {marker} sim:tokens=2", parent_id=None)
    await communicator.disconnect()

    assert edited["parent_id"] is None
    assert sent_for(simulator, f"first again {marker}") == [
        [{"role": "user", "content": edited["content"]}]
    ]
    first_turns = conversation.messages.filter(parent=None).order_by("created_at")
    assert [m.content async for m in first_turns] == [
        f"one {marker} sim:tokens=3",
        edited["content"],
    ]
    assert await leaf_of(conversation) == done["message_id"]


@pytest.mark.usefixtures("both_layers")  # the `branch` frame crosses the layer to every tab
async def test_a_switch_shows_the_branch_in_every_tab_and_the_next_message_follows_it(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = uuid.uuid4().hex
    tab = await connect(conversation.id, user)
    other_tab = await connect(conversation.id, user)
    one, first, two, second = await two_turns(tab, marker)
    await turn(tab, f"edited {marker} sim:tokens=2", parent_id=first["id"])

    await tab.send_json_to({"type": "switch", "message_id": two["id"]})

    # Both tabs are told; the branch ends at the newest message below the version picked.
    assert (await receive_until(tab, "branch"))[-1] == {"type": "branch", "leaf_id": second["id"]}
    told = await receive_until(other_tab, "branch", timeout=15)
    assert told[-1]["leaf_id"] == second["id"]
    assert await leaf_of(conversation) == second["id"]
    await other_tab.send_json_to({"type": "ping"})
    pong = await receive_until(other_tab, "pong")
    assert (pong[-1]["last_id"], pong[-1]["count"]) == (second["id"], 6)

    # A message sent without a parent follows the branch shown: the original second turn.
    three, _ = await turn(tab, f"three {marker} sim:tokens=2")
    await tab.disconnect()
    await other_tab.disconnect()
    assert three["parent_id"] == second["id"]
    assert [m["content"] for m in sent_for(simulator, f"three {marker}")[0]] == [
        one["content"],
        first["content"],
        two["content"],
        second["content"],
        three["content"],
    ]


async def test_refused_parents_and_switches_write_and_send_nothing(
    connect: Connect,
    conversation: Conversation,
    user: User,
    other_user: User,
    simulator: SimulatorThread,
) -> None:
    marker = uuid.uuid4().hex
    communicator = await connect(conversation.id, user)
    *_, second = await two_turns(communicator, marker)
    theirs = await Conversation.objects.acreate(owner=other_user)
    their_message = await Message.objects.acreate(conversation=theirs, role="assistant")
    requests = len(simulator.requests)

    # A user message with an answer is not followed by another user message.
    asked = second["parent_id"]
    for parent_id in (str(uuid.uuid4()), str(their_message.pk), asked, "not-a-uuid", 7, ["x"]):
        await communicator.send_json_to({**user_message(f"stray {marker}"), "parent_id": parent_id})
        error = await communicator.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", "bad_parent"), parent_id
    for message_id in (str(uuid.uuid4()), str(their_message.pk), None, "x"):
        await communicator.send_json_to({"type": "switch", "message_id": message_id})
        error = await communicator.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", "bad_switch"), message_id
    await communicator.disconnect()

    assert await conversation.messages.acount() == 4
    assert not await Message.objects.filter(content__contains="stray").aexists()
    assert await leaf_of(conversation) == second["id"]
    assert len(simulator.requests) == requests
    assert await theirs.messages.acount() == 1
    assert (await Conversation.objects.aget(pk=theirs.pk)).leaf_id is None


async def test_an_answer_streams_and_resumes_exactly_on_a_branch_not_shown(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    marker = uuid.uuid4().hex
    tab = await connect(conversation.id, user)
    # The first answer is slow to make again (40 pieces at 10 a second): it is still
    # streaming while the branch is switched and another socket joins.
    _, first_done = await turn(tab, f"one {marker} sim:tokens=40 sim:rate=10")
    two, second_done = await turn(tab, f"two {marker} sim:tokens=3")
    first, second = first_done["message"], second_done["message"]

    # Regenerate the first answer slowly, then show the other branch while it streams.
    await tab.send_json_to({"type": "retry", "message_id": first["id"]})
    start = (await receive_until(tab, "start"))[-1]
    await tab.send_json_to({"type": "switch", "message_id": two["id"]})
    await receive_until(tab, "branch")
    late = await connect(conversation.id, user, snapshot=False)
    assembler = Assembler()
    done = None
    while done is None:
        frame = await late.receive_json_from(timeout=15)
        request = assembler.feed(frame)
        if request is not None:
            await late.send_json_to(request)
        if frame["type"] == "done" and frame["message_id"] == start["message_id"]:
            done = frame
    await tab.disconnect()
    await late.disconnect()

    saved = await Message.objects.aget(pk=start["message_id"])
    assert saved.status == "complete"
    assert saved.parent_id == uuid.UUID(first["parent_id"])
    assert assembler.text[start["message_id"]] == saved.content == done["message"]["content"]
    assert assembler.mismatches == assembler.unknown == 0
    # The switch made while it streamed holds: the branch shown is the one picked.
    assert await leaf_of(conversation) == second["id"]


def test_the_admin_shows_the_tree_with_versions_and_the_branch_shown(
    client: Client, django_user_model: Any, user: User
) -> None:
    conversation = Conversation.objects.create(owner=user, title="Branches")
    asked = Message.objects.create(conversation=conversation, role="user", content="Question")
    old = Message.objects.create(
        conversation=conversation, parent=asked, role="assistant", content="Old answer"
    )
    new = Message.objects.create(
        conversation=conversation, parent=asked, role="assistant", content="New answer"
    )
    Conversation.objects.filter(pk=conversation.pk).update(leaf=old)
    admin = django_user_model.objects.create_superuser("root", password="x" * 12)
    client.force_login(admin)

    page = client.get(f"/admin/streaming/conversation/{conversation.pk}/change/").content.decode()

    assert "Messages as a tree" in page
    assert "version 1 of 2" in page
    assert "version 2 of 2" in page
    assert "<strong>↳ Assistant · version 1 of 2 · Complete: Old answer</strong>" in page.replace(
        "\u2003", ""
    )
    assert f"/admin/streaming/message/{new.pk}/change/" in page
    assert "<strong>↳ Assistant · version 2 of 2" not in page.replace("\u2003", "")


# --- the migration from a linear history ------------------------------------------------


def test_the_migration_makes_a_linear_history_a_tree_without_changing_a_message(
    user: User,
) -> None:
    executor = MigrationExecutor(connection)
    before = [("streaming", "0003_quota")]
    latest = executor.loader.graph.leaf_nodes("streaming")
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    OldConversation = apps.get_model("streaming", "Conversation")
    OldMessage = apps.get_model("streaming", "Message")
    start = timezone.now() - timedelta(hours=1)

    def write(conversation: Any, rows: list[tuple[str, str, str]]) -> list[Any]:
        return [
            OldMessage.objects.create(
                conversation=conversation,
                role=role,
                status=status,
                content=content,
                created_at=start + timedelta(seconds=n),
            )
            for n, (role, status, content) in enumerate(rows)
        ]

    retried = OldConversation.objects.create(owner_id=user.pk, title="retried")
    u1, failed, retry, u2, a2 = write(
        retried,
        [
            ("user", "complete", "Hello"),
            ("assistant", "error", ""),
            ("assistant", "complete", "Hi there"),
            ("user", "complete", "And then?"),
            ("assistant", "cancelled", "Then we"),
        ],
    )
    empty = OldConversation.objects.create(owner_id=user.pk, title="empty")
    lonely = OldConversation.objects.create(owner_id=user.pk, title="lonely")
    (alone,) = write(lonely, [("user", "complete", "Anyone?")])
    rows_before = sorted(
        OldMessage.objects.values_list("pk", "conversation_id", "role", "status", "content")
    )

    executor = MigrationExecutor(connection)
    executor.migrate(latest)

    rows_after = sorted(
        Message.objects.values_list("pk", "conversation_id", "role", "status", "content")
    )
    assert rows_after == rows_before
    parents = dict(Message.objects.values_list("pk", "parent_id"))
    assert parents[u1.pk] is None
    assert parents[failed.pk] == parents[retry.pk] == u1.pk  # the retry is a version
    assert parents[u2.pk] == retry.pk
    assert parents[a2.pk] == u2.pk
    assert parents[alone.pk] is None
    conversation = Conversation.objects.get(pk=retried.pk)
    assert conversation.leaf_id == a2.pk
    assert [m.pk for m in Tree(conversation.messages.all()).branch(conversation.leaf_id)] == [
        u1.pk,
        retry.pk,
        u2.pk,
        a2.pk,
    ]
    assert Conversation.objects.get(pk=empty.pk).leaf_id is None
    assert Conversation.objects.get(pk=lonely.pk).leaf_id == alone.pk
