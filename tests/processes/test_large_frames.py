"""Conversations and answers longer than a frame, over a real daphne process and real
sockets: daphne sends no frame over 1 MiB (a longer one closes the socket with 1011), so
every frame stays within FRAME_BUDGET_BYTES and a longer one travels in parts."""

import json
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from streaming.models import Conversation, Message
from tests.support.frames import user_message
from tests.support.live import LiveClient
from tests.support.long import write_chain
from tests.support.servers import FAST_CHECKPOINTS, DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

# The longest message a person may send, in a script JSON writes as one escape a character
# (6 bytes): three of them once made a snapshot no socket could receive.
CJK_MESSAGE = ("長い会話の文字" * 5000)[: settings.MAX_MESSAGE_CHARS]


async def test_a_conversation_of_three_longest_cjk_messages_opens_and_streams(
    live_servers: Callable[..., list[DaphneServer]], conversation: Conversation, cookie: str
) -> None:
    (server,) = live_servers(1)
    async with LiveClient(server, conversation.id, cookie) as writer:
        for turn in range(3):
            await writer.send(user_message(f"{turn} {CJK_MESSAGE}"[: len(CJK_MESSAGE)]))
            await writer.receive_until("done")

    async with LiveClient(server, conversation.id, cookie) as reader:
        snapshot = reader.snapshot
        # The window holds the newest turns; the rest comes on request.
        held = list(snapshot["messages"])
        while held[0]["parent_id"] is not None:
            await reader.send({"type": "history", "before": held[0]["id"]})
            held[:0] = (await reader.receive_until("history"))["messages"]
        await reader.send(user_message("and one more sim:tokens=20"))
        done = await reader.receive_until("done")

    saved = [m.content async for m in conversation.messages.order_by("created_at")]
    assert len(saved) == 8
    assert done["status"] == "complete"
    assert [m["content"] for m in held] == saved[:6]
    assert 1 < len(snapshot["messages"]) < 6
    # The window (two of the messages: the simulator's answers repeat the question) is longer
    # than a frame as JSON: it came in parts, none over the budget.
    assert len(json.dumps(snapshot)) > settings.FRAME_BUDGET_BYTES
    assert reader.joiner.longest <= settings.FRAME_BUDGET_BYTES
    assert writer.joiner.longest <= settings.FRAME_BUDGET_BYTES


async def checkpointed(message_id: str) -> str:
    """The answer's text as its last checkpoint saved it."""
    return (await Message.objects.aget(pk=message_id)).content


async def test_a_long_answers_snapshot_sync_and_done_come_in_parts_and_whole(
    live_servers: Callable[..., list[DaphneServer]], conversation: Conversation, cookie: str
) -> None:
    budget = 1024
    (server,) = live_servers(1, FRAME_BUDGET_BYTES=str(budget), **FAST_CHECKPOINTS)
    async with LiveClient(server, conversation.id, cookie) as writer:
        await writer.send(user_message("long sim:tokens=6000 sim:rate=600"))
        start = await writer.receive_until("start")
        answer_id = start["message_id"]
        # Until a checkpoint holds more than a frame's worth of the answer.
        while len(await checkpointed(answer_id)) <= 2 * budget:
            await writer.receive()
        # Joining mid-answer: the snapshot holds the checkpointed text (several kB), and a
        # sync from the start asks for all of it so far.
        async with LiveClient(server, conversation.id, cookie) as joiner:
            active = joiner.snapshot["active"]
            await joiner.send({"type": "sync", "message_id": answer_id, "after_seq": 0})
            sync = await joiner.receive_until("sync")
            while sync["after_seq"] != 0:
                sync = await joiner.receive_until("sync")
            done_joiner = await joiner.receive_until("done", timeout=30)
        done_writer = await writer.receive_until("done", timeout=30)

    saved = await Message.objects.aget(pk=answer_id)
    assert saved.status == Message.Status.COMPLETE
    assert len(saved.content) > 5 * budget
    assert active is not None
    assert len(active["text"]) > budget
    assert saved.content.startswith(active["text"])
    assert len(sync["text"]) > budget
    assert saved.content.startswith(sync["text"])
    assert done_writer["message"]["content"] == done_joiner["message"]["content"] == saved.content
    assert writer.text_of(answer_id) == joiner.text_of(answer_id) == saved.content
    assert writer.joiner.longest <= budget
    assert joiner.joiner.longest <= budget


async def test_ten_thousand_messages_open_in_a_window_and_older_ones_come_on_request(
    live_servers: Callable[..., list[DaphneServer]], conversation: Conversation, cookie: str
) -> None:
    messages = await sync_to_async(write_chain)(conversation, 10_000, 500)
    (server,) = live_servers(1)

    async with LiveClient(server, conversation.id, cookie) as client:
        snapshot = client.snapshot
        frames_for_snapshot = len(client.frames)
        before = snapshot["messages"][0]["id"]
        collected = [m["id"] for m in snapshot["messages"]]
        for _ in range(3):
            await client.send({"type": "history", "before": before})
            older = await client.receive_until("history")
            assert older["before"] == before
            collected[:0] = [m["id"] for m in older["messages"]]
            before = older["messages"][0]["id"]
        await client.ping()
        pong = await client.receive_until("pong")

    assert snapshot["count"] == pong["count"] == 10_000
    assert frames_for_snapshot == 1
    # A window is at most 100 messages (here 50,000 characters, under its budget): the
    # snapshot and every history frame are ~60 kB, one socket message each.
    assert client.joiner.longest < 100_000
    assert len(collected) == 4 * 100
    assert collected == [str(m.id) for m in messages[-len(collected) :]]
    # The pong agreed with what the client holds plus what it was told it does not.
    assert not client.assembler.resyncing
