"""Stop, snapshot, sync and retry on one process (real ASGI stack, DB, simulator).

Every test runs on the in-memory layer and on channels-redis with a real Redis.
"""

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.assembler import Assembler
from tests.support.frames import receive_until, user_message
from tests.support.waiting import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("both_layers")]

Connect = Callable[..., Any]


async def follow(communicator: WebsocketCommunicator, assembler: Assembler) -> dict[str, Any]:
    """Feed frames to the assembler (answering its sync requests) until a `done`."""
    while True:
        frame: dict[str, Any] = await communicator.receive_json_from(timeout=10)
        request = assembler.feed(frame)
        if request is not None:
            await communicator.send_json_to(request)
        if frame["type"] == "done":
            return frame


async def test_snapshot_lists_stored_messages_and_no_active_answer(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    first = await connect(conversation.id, user)
    await first.send_json_to(user_message("hello sim:tokens=4"))
    done = (await receive_until(first, "done"))[-1]
    await first.disconnect()

    second = await connect(conversation.id, user)
    await second.disconnect()
    snapshot = second.snapshot
    assert snapshot["active"] is None
    assert [m["role"] for m in snapshot["messages"]] == ["user", "assistant"]
    assert snapshot["messages"][1]["content"] == done["message"]["content"]
    assert snapshot["messages"][1]["status"] == "complete"


async def test_socket_joining_mid_answer_assembles_the_exact_text(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    sender = await connect(conversation.id, user)
    await sender.send_json_to(user_message("long one sim:tokens=120 sim:rate=150"))
    message_id = (await receive_until(sender, "delta"))[-1]["message_id"]
    # Past a checkpoint, so the snapshot carries text.
    await until(lambda: Message.objects.filter(pk=message_id, seq__gt=0).aexists())

    joiner = await connect(conversation.id, user)
    active = joiner.snapshot["active"]
    assert active is not None
    assert active["seq"] > 0
    assert active["text"]
    assembler = Assembler()
    assembler.feed(joiner.snapshot)
    done = await follow(joiner, assembler)
    await receive_until(sender, "done")
    await sender.disconnect()
    await joiner.disconnect()

    saved = await Message.objects.aget(pk=done["message_id"])
    assert assembler.text[done["message_id"]] == saved.content == done["message"]["content"]


async def test_sockets_joining_at_random_moments_all_assemble_the_exact_text(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.1
    sender = await connect(conversation.id, user)
    await sender.send_json_to(user_message("many joins sim:tokens=300 sim:rate=100"))
    await receive_until(sender, "start")
    # The moments are the answer's, not the clock's: each joins once the sender has seen a
    # random number of its words, however fast they come. Within its first half: one that
    # joins at the very end may get the tail only in `done` (a lost tail the page heals),
    # and this test is about assembling it.
    streamed: list[str] = []

    async def read_until_done() -> None:
        while True:
            frame = await sender.receive_json_from(timeout=30)
            if frame["type"] == "delta":
                streamed.append(frame["text"])
            if frame["type"] == "done":
                return

    reading = asyncio.create_task(read_until_done())
    mid_stream = 0

    async def join_after(words: int) -> tuple[str, str]:
        nonlocal mid_stream
        await until(
            lambda: reading.done() or len("".join(streamed).split()) >= words,
            timeout=30,
            what=f"{words} words streamed",
        )
        communicator = await connect(conversation.id, user)
        assembler = Assembler()
        assembler.feed(communicator.snapshot)
        if communicator.snapshot["active"] is None:  # joined after the end
            await communicator.disconnect()
            message = communicator.snapshot["messages"][-1]
            return assembler.text[message["id"]], message["id"]
        mid_stream += 1
        done = await follow(communicator, assembler)
        await communicator.disconnect()
        return assembler.text[done["message_id"]], done["message_id"]

    rng = random.Random(7)
    results = await asyncio.gather(*(join_after(rng.randint(0, 150)) for _ in range(12)))
    await reading
    await sender.disconnect()

    message_id = results[0][1]
    saved = await Message.objects.aget(pk=message_id)
    assert saved.status == "complete"
    assert [text for text, _ in results] == [saved.content] * len(results)
    assert mid_stream >= len(results) // 2


async def test_sync_returns_the_text_after_a_seq(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("sync me sim:tokens=80 sim:rate=100"))
    frames = await receive_until(communicator, "delta")
    message_id = frames[-1]["message_id"]
    await communicator.send_json_to({"type": "sync", "message_id": message_id, "after_seq": 0})

    frames += await receive_until(communicator, "sync")
    sync = frames[-1]
    deltas = [f for f in frames if f["type"] == "delta"]
    done = (await receive_until(communicator, "done"))[-1]
    await communicator.disconnect()
    assert sync["after_seq"] == 0
    assert sync["seq"] >= 1
    assert done["message"]["content"].startswith(sync["text"])
    assert sync["seq"] >= max(d["seq"] for d in deltas)


async def test_sync_for_an_ended_answer_replies_done(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("short sim:tokens=3"))
    done = (await receive_until(communicator, "done"))[-1]
    await communicator.send_json_to(
        {"type": "sync", "message_id": done["message_id"], "after_seq": 1}
    )
    again = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert again["type"] == "done"
    assert again["message"]["content"] == done["message"]["content"]


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "sync", "message_id": "nope", "after_seq": 0},
        {"type": "sync", "message_id": str(uuid.uuid4()), "after_seq": 0},
        {"type": "sync", "after_seq": -1},
        {"type": "sync", "after_seq": "3"},
        {"type": "sync", "after_seq": True},
    ],
)
async def test_bad_sync_gets_error(
    connect: Connect, conversation: Conversation, user: User, frame: dict[str, Any]
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(frame)
    error = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert (error["type"], error["code"]) == ("error", "bad_sync")


# --- stop -----------------------------------------------------------------------------


async def test_stop_cancels_the_answer_and_keeps_its_text(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    sender = await connect(conversation.id, user)
    other_tab = await connect(conversation.id, user)
    await sender.send_json_to(user_message("stop me sim:tokens=2000 sim:rate=50"))
    frames = await receive_until(sender, "delta")
    await other_tab.send_json_to({"type": "stop"})

    frames += await receive_until(sender, "done")
    other_frames = await receive_until(other_tab, "done")
    await sender.disconnect()
    await other_tab.disconnect()

    done = frames[-1]
    assert done["status"] == "cancelled"
    assert other_frames[-1]["status"] == "cancelled"
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    saved = await Message.objects.aget(pk=done["message_id"])
    assert saved.status == "cancelled"
    assert saved.content == text == done["message"]["content"]
    assert 0 < len(saved.content.split()) < 2000
    assert saved.error == ""


async def test_stop_closes_the_upstream_request(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    with SimulatorThread(rate=20.0) as own:
        settings.OPENAI_BASE_URL = own.base_url
        communicator = await connect(conversation.id, user)
        await communicator.send_json_to(user_message("stop me sim:tokens=1000"))
        await receive_until(communicator, "delta")
        assert own.simulator.open_connections == 1
        await communicator.send_json_to({"type": "stop"})
        await receive_until(communicator, "done")
        await communicator.disconnect()
        await until(lambda: own.simulator.open_connections == 0, what="the upstream request closed")


async def test_stop_with_nothing_running_is_a_no_op(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to({"type": "stop"})
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_json_to(user_message("after a stray stop sim:tokens=3"))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()
    assert frames[-1]["status"] == "complete"


# --- retry ----------------------------------------------------------------------------


async def test_retry_answers_again_in_a_new_message(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    communicator = await connect(conversation.id, user)
    content = f"flaky {uuid.uuid4()} sim:status=400 sim:times=1 sim:tokens=5"
    await communicator.send_json_to(user_message(content))
    failed = (await receive_until(communicator, "done"))[-1]
    assert failed["status"] == "error"

    await communicator.send_json_to({"type": "retry", "message_id": failed["message_id"]})
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert frames[0]["type"] == "start"
    assert frames[-1]["status"] == "complete"
    assert frames[-1]["message_id"] != failed["message_id"]
    messages = [m async for m in conversation.messages.order_by("created_at")]
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "error"),
        ("assistant", "complete"),
    ]
    sent = [r for r in simulator.requests if r["messages"][-1]["content"] == content]
    assert len(sent) == 2
    assert sent[1]["messages"] == [{"role": "user", "content": content}]


async def test_regenerating_an_older_answer_makes_a_version_and_sends_only_its_branch(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    communicator = await connect(conversation.id, user)
    one = f"one {uuid.uuid4()} sim:tokens=2"
    await communicator.send_json_to(user_message(one))
    first = (await receive_until(communicator, "done"))[-1]
    await communicator.send_json_to(user_message("two sim:tokens=2"))
    await receive_until(communicator, "done")

    await communicator.send_json_to({"type": "retry", "message_id": first["message_id"]})
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    start = frames[0]
    assert start["type"] == "start"
    assert start["parent_id"] == first["message"]["parent_id"]
    assert frames[-1]["status"] == "complete"
    # The model was sent the first turn only: not the old answer, not the second turn.
    asked = [r["messages"] for r in simulator.requests if r["messages"][0]["content"] == one]
    assert asked[-1] == [{"role": "user", "content": one}]
    await conversation.arefresh_from_db()
    assert str(conversation.leaf_id) == start["message_id"]
    versions = [m async for m in conversation.messages.filter(parent_id=start["parent_id"])]
    assert len(versions) == 2
    assert await conversation.messages.acount() == 5  # nothing removed


async def test_retry_of_a_user_message_or_a_stranger_is_refused(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("one sim:tokens=2"))
    done = (await receive_until(communicator, "done"))[-1]
    for message_id in (done["message"]["parent_id"], str(uuid.uuid4())):
        await communicator.send_json_to({"type": "retry", "message_id": message_id})
        error = await communicator.receive_json_from(timeout=5)
        assert error["code"] == "bad_retry"
    await communicator.disconnect()
    assert await conversation.messages.acount() == 2


async def test_retry_while_streaming_is_busy(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("slow sim:tokens=30 sim:rate=60"))
    start = (await receive_until(communicator, "start"))[-1]
    await communicator.send_json_to({"type": "retry", "message_id": start["message_id"]})

    frames = await receive_until(communicator, "error")
    await receive_until(communicator, "done")
    await communicator.disconnect()
    assert frames[-1]["code"] == "busy"
    assert await conversation.messages.acount() == 2


# --- upstream retries -----------------------------------------------------------------


async def test_transient_upstream_failures_are_retried_before_the_first_token(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    communicator = await connect(conversation.id, user)
    content = f"retry me {uuid.uuid4()} sim:status=503 sim:times=2 sim:tokens=6"
    await communicator.send_json_to(user_message(content))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert frames[-1]["status"] == "complete"
    assert [f["type"] for f in frames].count("start") == 1
    sent = [r for r in simulator.requests if r["messages"][-1]["content"] == content]
    assert len(sent) == 3
    assert await conversation.messages.acount() == 2


@pytest.mark.parametrize("directives", ["sim:status=400", "sim:status=401", "sim:status=404"])
async def test_client_errors_are_not_retried(
    connect: Connect,
    conversation: Conversation,
    user: User,
    simulator: SimulatorThread,
    directives: str,
) -> None:
    communicator = await connect(conversation.id, user)
    content = f"no retry {uuid.uuid4()} {directives}"
    await communicator.send_json_to(user_message(content))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert frames[-1]["status"] == "error"
    assert [r["messages"][-1]["content"] for r in simulator.requests].count(content) == 1


async def test_failure_after_text_is_not_retried(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    communicator = await connect(conversation.id, user)
    content = f"no retry after text {uuid.uuid4()} sim:fault=drop sim:after=4"
    await communicator.send_json_to(user_message(content))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert frames[-1]["status"] == "error"
    assert frames[-1]["message"]["content"]
    assert [r["messages"][-1]["content"] for r in simulator.requests].count(content) == 1
