"""A page away from the end of the branch on the socket (docs/protocol.md, "Opening at a
message"): its snapshots are windows around where its reader is (`around`, on the socket's
address or a `resync`), it asks for newer messages with `history` `after`, and the answer
streaming at the end reaches it whole once it gets there."""

import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from streaming.models import Conversation, Message
from tests.support.frames import receive_until, user_message
from tests.support.long import branches, write_chain

pytestmark = pytest.mark.django_db(transaction=True)


def ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["id"] for m in messages]


async def newer_until_complete(tab: WebsocketCommunicator, after: str) -> list[dict[str, Any]]:
    """Ask for the messages below ``after`` until the end: every `history` reply, and every
    other frame that came meanwhile, in order."""
    frames = []
    while True:
        await tab.send_json_to({"type": "history", "after": after})
        came = await receive_until(tab, "history")
        frames += came
        if came[-1]["complete"]:
            return frames
        after = came[-1]["messages"][-1]["id"]


async def test_a_socket_opened_around_a_message_holds_a_window_around_it(
    connect: Any, user: User, conversation: Conversation
) -> None:
    messages = await sync_to_async(write_chain)(conversation, 400, 500)
    at = str(messages[100].id)

    opened = await connect(conversation.id, user, query=f"around={at}")
    plain = await connect(conversation.id, user)
    junk = await connect(conversation.id, user, query="around=not-a-message")

    window = opened.snapshot
    assert at in ids(window["messages"])
    assert window["window_end"] == window["messages"][-1]["id"]
    assert window["leaf_id"] == str(messages[-1].id)
    assert window["count"] == 400
    for at_end in (plain.snapshot, junk.snapshot):
        assert at_end["window_end"] is None
        assert ids(at_end["messages"])[-1] == str(messages[-1].id)
    # A resync names where the reader is now; one naming nothing is still answered, at the end.
    await opened.send_json_to({"type": "resync", "around": str(messages[300].id)})
    again = await opened.receive_json_from(timeout=5)
    await opened.send_json_to({"type": "resync", "around": ["nope"]})
    refused_nothing = await opened.receive_json_from(timeout=5)
    assert str(messages[300].id) in ids(again["messages"])
    assert again["window_end"] is not None
    assert refused_nothing["type"] == "snapshot"
    assert refused_nothing["window_end"] is None
    for tab in (opened, plain, junk):
        await tab.disconnect()


async def test_newer_messages_come_to_the_socket_that_asked_down_to_the_end(
    connect: Any, user: User, conversation: Conversation
) -> None:
    messages = await sync_to_async(write_chain)(conversation, 300, 500)
    asking = await connect(conversation.id, user, query=f"around={messages[40].id}")
    other = await connect(conversation.id, user)

    frames = await newer_until_complete(asking, asking.snapshot["window_end"])

    replies = [f for f in frames if f["type"] == "history"]
    got = ids(asking.snapshot["messages"]) + [m["id"] for r in replies for m in r["messages"]]
    assert got == [str(m.id) for m in messages[40 - got.index(str(messages[40].id)) :]]
    assert [f["type"] for f in frames] == ["history"] * len(replies)
    assert all(r["complete"] is (r is replies[-1]) for r in replies)
    assert await other.receive_nothing(timeout=0.5)
    await asking.disconnect()
    await other.disconnect()


@pytest.mark.parametrize("cursor", ["off_branch", "theirs", "unknown", "not_a_uuid", "both"])
async def test_newer_below_no_message_of_the_branch_shown_is_refused_changing_nothing(
    connect: Any, user: User, other_user: User, conversation: Conversation, cursor: str
) -> None:
    main, fork, theirs = await sync_to_async(branches)(conversation, other_user, 20, 7)
    cursors: dict[str, dict[str, Any]] = {
        "off_branch": {"after": str(fork[1].id)},
        "theirs": {"after": str(theirs[1].id)},
        "unknown": {"after": str(uuid.uuid4())},
        "not_a_uuid": {"after": 12},
        "both": {"after": str(main[3].id), "before": str(main[5].id)},
    }
    frame = cursors[cursor]
    tab = await connect(conversation.id, user)
    other = await connect(conversation.id, user)

    await tab.send_json_to({"type": "history", **frame})
    refusal = await tab.receive_json_from(timeout=5)

    assert refusal["type"] == "error"
    assert refusal["code"] == "bad_history"
    assert refusal["message"] in {
        "No such message on the branch shown.",
        "after must be a UUID.",
        "Ask for before or after, not both.",
    }
    assert await tab.receive_nothing(timeout=0.3)
    assert await other.receive_nothing(timeout=0.3)
    # Nothing written, nothing moved; the socket goes on.
    assert await Message.objects.filter(conversation=conversation).acount() == 23
    await conversation.arefresh_from_db(fields=["leaf"])
    assert conversation.leaf_id == main[-1].id
    await tab.send_json_to({"type": "history", "after": str(main[15].id)})
    assert ids((await tab.receive_json_from(timeout=5))["messages"]) == [
        str(m.id) for m in main[16:]
    ]
    await tab.disconnect()
    await other.disconnect()


async def test_an_answer_streaming_at_the_end_reaches_a_page_that_scrolls_down_to_it(
    connect: Any, user: User, conversation: Conversation
) -> None:
    messages = await sync_to_async(write_chain)(conversation, 300, 500)
    sender = await connect(conversation.id, user)
    # Eight seconds of answer: the reader reaches the end long before it is over.
    await sender.send_json_to(user_message("Go on sim:tokens=400 sim:rate=50"))
    await receive_until(sender, "delta")  # streaming now
    reader = await connect(conversation.id, user, query=f"around={messages[60].id}")
    assert reader.snapshot["window_end"] is not None
    answer_id = reader.snapshot["active"]["message_id"]

    frames = await newer_until_complete(reader, reader.snapshot["window_end"])

    # The last reply gives the answer's text to a seq, and the server asks it for the rest.
    last = frames[-1]
    assert last["active"]["message_id"] == answer_id
    assert ids(last["messages"])[-1] == answer_id
    after_reply = await receive_until(reader, "done", timeout=20)
    text, seq = last["active"]["text"], last["active"]["seq"]
    for frame in after_reply:
        if (frame["type"] == "sync" and frame["after_seq"] == seq) or (
            frame["type"] == "delta" and frame["seq"] == seq + 1
        ):
            text, seq = text + frame["text"], frame["seq"]
    assert after_reply[-1]["message"]["content"] == text  # nothing lost, nothing doubled
    saved = await Message.objects.aget(pk=answer_id)
    assert saved.status == "complete"
    await sender.disconnect()
    await reader.disconnect()
