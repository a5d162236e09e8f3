"""Stop from the moment of Send, on one process: a `stop` that names the message (or the
retry) by its client_id, before its answer exists or before the answer's first piece
(docs/protocol.md, "Stop from the moment of Send").

Every test runs on the in-memory layer and on channels-redis with a real Redis.
"""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from streaming import runtime
from streaming.models import Conversation, EarlyStop, Message
from streaming.services import conversations, stops
from streaming.services.database import to_async
from streaming.simulator import SimulatorThread
from tests.support.frames import SLOW_TO_START, receive_until, user_message
from tests.support.waiting import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("both_layers")]

Connect = Callable[..., Any]


def asked(simulator: SimulatorThread, marker: str) -> int:
    """How many requests reached the model whose last message carries ``marker``."""
    return sum(1 for r in simulator.requests if marker in str(r["messages"][-1]["content"]))


def types(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["type"] for frame in frames]


async def cancelled_unsent(frames: list[dict[str, Any]]) -> Message:
    """The answer whose `done` ends ``frames``: saved `cancelled` with no text, no piece sent."""
    done = frames[-1]
    assert "delta" not in types(frames)
    assert (done["status"], done["seq"], done["message"]["content"]) == ("cancelled", 0, "")
    saved = await Message.objects.aget(pk=done["message_id"])
    assert (saved.status, saved.content, saved.seq) == ("cancelled", "", 0)
    return saved


def marked() -> str:
    return f"m{uuid.uuid4().hex[:8]}"


async def test_stop_before_the_message_saves_its_answer_cancelled_without_asking_the_model(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker, client_id = marked(), uuid.uuid4()
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to({"type": "stop", "client_id": str(client_id)})
    await until(
        EarlyStop.objects.filter(conversation=conversation, client_id=client_id).aexists,
        what="the stop kept for a message not saved yet",
    )
    await communicator.send_json_to(user_message(f"{marker} sim:tokens=50", client_id))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert types(frames) == ["message", "start", "done"]
    saved = await cancelled_unsent(frames)
    assert saved.prompt_estimate is None  # never asked: nothing counts against the budget
    assert asked(simulator, marker) == 0
    assert await EarlyStop.objects.acount() == 0  # used up by the message it named


async def test_stop_right_after_the_message_ends_its_answer_before_the_first_piece(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    client_id = uuid.uuid4()
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message(f"slow to start {SLOW_TO_START}", client_id))
    await communicator.send_json_to({"type": "stop", "client_id": str(client_id)})
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    await cancelled_unsent(frames)
    assert await EarlyStop.objects.acount() == 0  # saved already: its answer was flagged


async def test_stop_after_the_start_before_the_first_piece_sends_no_piece(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message(f"slow to start {SLOW_TO_START}"))
    frames = await receive_until(communicator, "start")
    await communicator.send_json_to({"type": "stop"})
    frames += await receive_until(communicator, "done")
    await communicator.disconnect()

    await cancelled_unsent(frames)


async def test_stop_flagged_before_the_answer_listens_ends_it_without_asking_the_model(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = marked()
    communicator = await connect(conversation.id, user)
    saved = runtime.current().watch.mark()
    started = await to_async(conversations.do_post_user_message)(
        conversation, f"{marker} sim:tokens=50", uuid.uuid4()
    )
    assert isinstance(started, conversations.Started)
    # Stopped on another process between the answer's commit and its process joining the
    # control group: the request over the channel layer reached no one; the flag is set.
    stopping = await to_async(stops.do_request_stop)(conversation.id, started.answer.id)
    assert stopping == [started.answer.id]
    runtime.current().start_answer(started, saved)
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert types(frames) == ["message", "start", "done"]
    await cancelled_unsent(frames)
    assert asked(simulator, marker) == 0


async def test_stop_right_behind_a_retry_ends_its_answer_before_the_first_piece(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message(f"slow to start {SLOW_TO_START}"))
    first = (await receive_until(communicator, "start"))[-1]
    await communicator.send_json_to({"type": "stop"})
    await receive_until(communicator, "done")

    retry_id = uuid.uuid4()
    retry = {"type": "retry", "message_id": first["message_id"], "client_id": str(retry_id)}
    await communicator.send_json_to(retry)
    await communicator.send_json_to({"type": "stop", "client_id": str(retry_id)})
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    saved = await cancelled_unsent(frames)
    assert saved.client_id == retry_id  # the retry's client_id is its answer's
    assert saved.parent_id == (await Message.objects.aget(pk=first["message_id"])).parent_id


async def test_stop_ahead_of_a_retry_saves_its_answer_cancelled_without_asking_the_model(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    marker = marked()
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message(f"{marker} sim:tokens=3"))
    first = (await receive_until(communicator, "done"))[-1]
    assert asked(simulator, marker) == 1

    retry_id = uuid.uuid4()
    await communicator.send_json_to({"type": "stop", "client_id": str(retry_id)})
    retry = {"type": "retry", "message_id": first["message_id"], "client_id": str(retry_id)}
    await communicator.send_json_to(retry)
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert types(frames) == ["start", "done"]
    assert (await cancelled_unsent(frames)).client_id == retry_id
    assert asked(simulator, marker) == 1
    assert await EarlyStop.objects.acount() == 0


async def test_stop_of_a_message_whose_answer_ended_changes_nothing(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    client_id = uuid.uuid4()
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("short sim:tokens=3", client_id))
    done = (await receive_until(communicator, "done"))[-1]
    await communicator.send_json_to({"type": "stop", "client_id": str(client_id)})
    await communicator.send_json_to({"type": "ping"})  # handled after the stop: in order
    frames = await receive_until(communicator, "pong")
    await communicator.disconnect()

    assert types(frames) == ["pong"]
    saved = await Message.objects.aget(pk=done["message_id"])
    assert (saved.status, saved.stop_requested) == ("complete", False)
    assert await EarlyStop.objects.acount() == 0


BAD_STOPS = [
    pytest.param({"client_id": "not a uuid"}, id="text"),
    pytest.param({"client_id": 12}, id="number"),
    pytest.param({"client_id": ["00000000-0000-4000-8000-000000000000"]}, id="list"),
    pytest.param({"client_id": ""}, id="empty"),
    pytest.param(
        {
            "client_id": "00000000-0000-4000-8000-000000000000",
            "message_id": "00000000-0000-4000-8000-000000000001",
        },
        id="both",
    ),
]


@pytest.mark.parametrize("fields", BAD_STOPS)
async def test_stop_with_a_malformed_client_id_is_refused_and_changes_nothing(
    connect: Connect, conversation: Conversation, user: User, fields: dict[str, Any]
) -> None:
    client_id = uuid.uuid4()
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("go on sim:tokens=20 sim:rate=100", client_id))
    await communicator.send_json_to({"type": "stop", **fields})
    frames = await receive_until(communicator, "error")
    frames += await receive_until(communicator, "done")
    await communicator.disconnect()

    error = next(frame for frame in frames if frame["type"] == "error")
    assert error["code"] == "bad_stop"
    assert "client_id" in error["message"]
    done = frames[-1]
    assert done["status"] == "complete"  # not stopped
    saved = await Message.objects.aget(pk=done["message_id"])
    assert (saved.status, saved.stop_requested) == ("complete", False)
    assert await EarlyStop.objects.acount() == 0


async def test_retry_with_a_malformed_client_id_is_refused_and_saves_nothing(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator: WebsocketCommunicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("once sim:tokens=3"))
    done = (await receive_until(communicator, "done"))[-1]
    retry = {"type": "retry", "message_id": done["message_id"], "client_id": "nope"}
    await communicator.send_json_to(retry)
    error = (await receive_until(communicator, "error"))[-1]
    await communicator.disconnect()

    assert error["code"] == "bad_retry"
    assert await Message.objects.filter(conversation=conversation).acount() == 2
