"""Windows of a long conversation (services/window.py): the messages above one on its branch,
as many as fit a budget of bytes, with the other versions of each as stubs; and the
`history` request that asks for them over the socket (docs/protocol.md, "Older messages")."""

import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from streaming.exceptions import Invalid
from streaming.models import Conversation, Message
from streaming.services import window
from streaming.services.tree import Tree
from tests.support.long import write_chain

pytestmark = pytest.mark.django_db(transaction=True)

EMOJI = "😀"  # one character, four bytes in UTF-8, two escapes in JSON


def chain(
    conversation: Conversation, count: int, content: str = "m", parent: Any = None
) -> list[Message]:
    """``count`` messages, each following the one before (user, answer, user…) from
    ``parent``, a second apart so that their order is plain."""
    start = timezone.now() - timedelta(days=1)
    messages = []
    # An answer follows a user message; a user message follows an answer, or nothing.
    offset = 1 if parent is not None and parent.role == Message.Role.USER else 0
    for index in range(count):
        role = Message.Role.USER if (index + offset) % 2 == 0 else Message.Role.ASSISTANT
        parent = Message.objects.create(
            conversation=conversation,
            role=role,
            content=f"{content}{index}" if len(content) < 5 else content,
            parent=parent,
        )
        Message.objects.filter(pk=parent.pk).update(created_at=start + timedelta(seconds=index))
        parent.refresh_from_db()
        messages.append(parent)
    return messages


def ids(messages: list[Any]) -> list[str]:
    return [str(m.id) if isinstance(m, Message) else m["id"] for m in messages]


def test_a_window_holds_the_newest_messages_whose_text_fits_the_budget(
    conversation: Conversation,
) -> None:
    messages = chain(conversation, 30, EMOJI * 1000)

    found = window.window(conversation, messages[-1].pk, budget=20_000)

    # 1,000 characters each, 4,000 bytes of UTF-8: the fifth reaches 20,000 and ends it.
    assert ids(found.messages) == ids(messages[-5:])
    assert found.versions == []
    assert not found.complete
    tiny = window.window(conversation, messages[-1].pk, budget=1)
    assert ids(tiny.messages) == ids(messages[-1:])  # at least the tip, however long


def test_a_window_stops_at_its_count_and_at_the_first_turn(conversation: Conversation) -> None:
    messages = chain(conversation, 12)

    assert ids(window.window(conversation, messages[-1].pk, limit=4).messages) == ids(messages[-4:])
    whole = window.window(conversation, messages[-1].pk, budget=10**9)
    assert ids(whole.messages) == ids(messages)
    assert whole.complete
    assert ids(window.window(conversation, messages[3].pk, budget=10**9).messages) == ids(
        messages[:4]
    )


def test_a_window_holds_only_its_branch_and_the_other_versions_as_stubs(
    conversation: Conversation,
) -> None:
    first = chain(conversation, 4)  # u0 a1 u2 a3
    # An edit of u2 (a version of it) with its own answer, and a regenerated a1, and a second
    # first turn: three forks the window passes.
    edit = chain(conversation, 2, "edit", parent=first[1])
    again = chain(conversation, 1, "again", parent=first[0])
    start = chain(conversation, 1, "start")
    tip = first[-1]

    found = window.window(conversation, tip.pk, budget=10**9)

    assert ids(found.messages) == ids(first)
    stubs = [window.stub_of(m) for m in found.versions]
    assert sorted(ids(stubs)) == sorted(ids([edit[0], again[0], start[0]]))
    assert all(set(stub) == {"id", "parent_id", "role", "status", "created_at"} for stub in stubs)
    # As services/tree.py counts versions.
    tree = Tree(conversation.messages.all())
    for message in found.messages:
        versions = [str(v.id) for v in tree.versions(message)]
        held = [
            s["id"]
            for s in stubs
            if s["parent_id"] == (str(message.parent_id) if message.parent_id else None)
        ]
        assert sorted(versions) == sorted([str(message.id), *held])
    # Nothing below the tip, nor the edit's own answer, which follows a stub.
    assert str(edit[1].id) not in ids(stubs)


def test_a_tip_of_another_conversation_gives_an_empty_window(
    conversation: Conversation, other_user: User
) -> None:
    strangers = chain(Conversation.objects.create(owner=other_user), 3)

    assert window.window(conversation, strangers[-1].pk).messages == []
    assert window.window(conversation, None).complete


def test_history_walks_the_branch_to_the_first_turn_once_each(
    conversation: Conversation, settings: Any
) -> None:
    settings.FRAME_BUDGET_BYTES = 2048  # windows of 1,024 bytes: about ten messages
    messages = chain(conversation, 60, "x" * 100)
    chain(conversation, 3, "other branch", parent=messages[20])

    collected: list[dict[str, Any]] = []
    before = str(messages[-1].id)
    requests = 0
    while True:
        frame = window.history(conversation, before)
        requests += 1
        assert frame["before"] == before
        assert frame["messages"], "a request short of the first turn always brings messages"
        collected[:0] = frame["messages"]
        if frame["complete"]:
            break
        before = frame["messages"][0]["id"]

    assert ids(collected) == ids(messages[:-1])  # all above the tip, once each, in order
    assert 5 <= requests <= 12
    assert window.history(conversation, str(messages[0].id))["messages"] == []


@pytest.mark.parametrize("before", ["not-a-uuid", "0e1d5a7c-4a8b-4c57-9d43-2f6e8a1b9c30", None])
def test_history_of_no_message_of_the_conversation_is_refused(
    conversation: Conversation, other_user: User, before: Any
) -> None:
    strangers = chain(Conversation.objects.create(owner=other_user), 2)
    for asked in (before, str(strangers[-1].id)):
        with pytest.raises(Invalid) as refused:
            window.history(conversation, asked)
        assert refused.value.code == "bad_history"


async def test_history_over_the_socket_answers_that_socket_alone(
    connect: Any, user: User, conversation: Conversation
) -> None:
    messages = await sync_to_async(chain)(conversation, 6)
    await Conversation.objects.filter(pk=conversation.pk).aupdate(leaf=messages[-1])
    asking = await connect(conversation.id, user)
    other = await connect(conversation.id, user)

    await asking.send_json_to({"type": "history", "before": str(messages[3].id)})
    reply = await asking.receive_json_from(timeout=5)
    await asking.send_json_to({"type": "history", "before": "nope"})
    refusal = await asking.receive_json_from(timeout=5)

    assert reply["type"] == "history"
    assert ids(reply["messages"]) == ids(messages[:3])
    assert reply["complete"] is True
    assert refusal == {
        "type": "error",
        "code": "bad_history",
        "message": "before must be a UUID.",
    }
    assert await other.receive_nothing(timeout=0.5)
    await asking.disconnect()
    await other.disconnect()


def test_the_page_of_a_ten_thousand_message_conversation_holds_a_window(
    logged_in: Client, conversation: Conversation
) -> None:
    messages = write_chain(conversation, 10_000, 500)  # 5 MB of text

    response = logged_in.get(f"/c/{conversation.id}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert len(response.content) < 300_000
    assert f'data-message-id="{messages[-1].id}"' in page
    assert str(messages[0].id) not in page
    assert str(messages[-300].id) not in page
    initial = json.loads(
        page.split('<script id="initial-messages" type="application/json">')[1].split("</script>")[
            0
        ]
    )
    assert initial["count"] == 10_000
    assert initial["leaf_id"] == str(messages[-1].id)
    assert [m["id"] for m in initial["messages"]] == ids(messages[-len(initial["messages"]) :])
    assert 100 <= len(initial["messages"]) * 500 <= window.window_bytes() + 500
