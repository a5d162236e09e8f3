"""The chat WebSocket, end to end in one process: real ASGI stack, real DB, real simulator.

Every test runs on the in-memory layer and on channels-redis with a real Redis.
"""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.frames import receive_until, user_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("both_layers")]

Connect = Callable[..., Any]


async def messages_in(conversation: Conversation) -> list[Message]:
    return await sync_to_async(lambda: list(conversation.messages.order_by("created_at")))()


async def wait_for_status(message_id: str, statuses: set[str], timeout: float = 10) -> Message:
    """Poll the DB until the message reaches one of ``statuses``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        message = await Message.objects.aget(pk=message_id)
        if message.status in statuses:
            return message
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"message stayed {message.status}")
        await asyncio.sleep(0.05)


async def answer(frames: list[dict[str, Any]]) -> str:
    """The text a client assembles from the delta frames, checking seq has no gaps."""
    deltas = [f for f in frames if f["type"] == "delta"]
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    return "".join(d["text"] for d in deltas)


# --- who may connect ------------------------------------------------------------------


async def test_connect_anonymous_is_closed_with_4401(
    connect: Connect, conversation: Conversation
) -> None:
    communicator = await connect(conversation.id)
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_connect_other_users_conversation_is_closed_with_4403(
    connect: Connect, conversation: Conversation, other_user: User
) -> None:
    communicator = await connect(conversation.id, other_user, snapshot=False)
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


async def test_connect_unknown_conversation_is_closed_with_4403(
    connect: Connect, user: User
) -> None:
    communicator = await connect(uuid.uuid4(), user, snapshot=False)
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


async def test_connect_from_foreign_origin_is_refused(
    conversation: Conversation, user: User
) -> None:
    from chatsite.asgi import application

    communicator = WebsocketCommunicator(
        application,
        f"/ws/conversations/{conversation.id}/",
        headers=[(b"origin", b"http://evil.example"), (b"host", b"localhost")],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


# --- the happy path -------------------------------------------------------------------


async def test_user_message_streams_answer_and_saves_it(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    communicator = await connect(conversation.id, user)
    client_id = uuid.uuid4()
    await communicator.send_json_to(user_message("Tell me a story sim:tokens=25", client_id))

    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert [f["type"] for f in frames[:2]] == ["message", "start"]
    assert frames[0]["title"] == "Tell me a story sim:tokens=25"
    echoed = frames[0]["message"]
    assert echoed["role"] == "user"
    assert echoed["client_id"] == str(client_id)
    done = frames[-1]
    assert done["status"] == "complete"
    assert done["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] == 25
    assert done["error"] == ""
    text = await answer(frames)
    assert text == done["message"]["content"]

    user_msg, assistant = await messages_in(conversation)
    assert user_msg.content == "Tell me a story sim:tokens=25"
    assert user_msg.client_id == client_id
    assert assistant.role == "assistant"
    assert assistant.status == "complete"
    assert assistant.content == text
    assert assistant.completion_tokens == 25
    assert assistant.heartbeat_at is None
    updated = await Conversation.objects.aget(pk=conversation.pk)
    assert updated.title == "Tell me a story sim:tokens=25"


async def test_user_message_is_sent_with_history_and_system_prompt(
    connect: Connect, user: User, simulator: SimulatorThread
) -> None:
    conversation = await Conversation.objects.acreate(owner=user, system_prompt="Be brief.")
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("first sim:tokens=3"))
    first = await receive_until(communicator, "done")
    await communicator.send_json_to(user_message("second sim:tokens=3"))
    await receive_until(communicator, "done")
    await communicator.disconnect()

    sent = [r for r in simulator.requests if r["messages"][-1]["content"] == "second sim:tokens=3"]
    assert sent[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first sim:tokens=3"},
        {"role": "assistant", "content": first[-1]["message"]["content"]},
        {"role": "user", "content": "second sim:tokens=3"},
    ]


async def test_every_socket_of_the_conversation_sees_the_stream(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    sender = await connect(conversation.id, user)
    watcher = await connect(conversation.id, user)
    await sender.send_json_to(user_message("both tabs sim:tokens=15"))

    sent_frames = await receive_until(sender, "done")
    seen_frames = await receive_until(watcher, "done")
    await sender.disconnect()
    await watcher.disconnect()

    assert seen_frames[0]["type"] == "message"
    assert (
        await answer(seen_frames)
        == await answer(sent_frames)
        == seen_frames[-1]["message"]["content"]
    )


# --- bad frames -----------------------------------------------------------------------


# A client_id no message has; written out, so that every xdist worker collects the same test
# ids (they carry the frame).
FRESH_ID = "5f0c8a1e-7d4b-4c2a-9e3f-1a2b3c4d5e6f"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"content": "no type"}', "unknown_type"),
        (
            '{"type": "user_message", "content": "   ", "client_id": "' + FRESH_ID + '"}',
            "empty_content",
        ),
        (
            '{"type": "user_message", "content": 42, "client_id": "' + FRESH_ID + '"}',
            "empty_content",
        ),
        ('{"type": "user_message", "content": "hi", "client_id": "nope"}', "bad_client_id"),
        ('{"type": "user_message", "content": "hi"}', "bad_client_id"),
    ],
)
async def test_bad_frame_gets_error_and_socket_stays_open(
    connect: Connect, conversation: Conversation, user: User, raw: str, code: str
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_to(text_data=raw)

    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    assert await messages_in(conversation) == []

    await communicator.send_json_to(user_message("still here? sim:tokens=2"))
    frames = await receive_until(communicator, "done")
    assert frames[-1]["status"] == "complete"
    await communicator.disconnect()


async def test_over_long_message_is_refused_and_not_saved(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.MAX_MESSAGE_CHARS = 100
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("x" * 101))

    error = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert error["code"] == "content_too_long"
    assert "100" in error["message"]
    assert await messages_in(conversation) == []


async def test_binary_frame_gets_error(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_to(bytes_data=b"\x00\x01")
    error = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert error["code"] == "bad_json"


# --- one answer at a time, resends ----------------------------------------------------


async def test_second_message_while_streaming_is_busy(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("slow one sim:tokens=20 sim:rate=40"))
    await receive_until(communicator, "start")
    await communicator.send_json_to(user_message("impatient"))

    frames = await receive_until(communicator, "error")
    assert frames[-1]["code"] == "busy"
    await receive_until(communicator, "done")
    await communicator.disconnect()
    contents = [m.content for m in await messages_in(conversation) if m.role == "user"]
    assert contents == ["slow one sim:tokens=20 sim:rate=40"]


async def test_repeated_client_id_creates_nothing_and_calls_upstream_once(
    connect: Connect, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    communicator = await connect(conversation.id, user)
    client_id = uuid.uuid4()
    marker = f"resend {client_id} sim:tokens=4"
    await communicator.send_json_to(user_message(marker, client_id))
    await receive_until(communicator, "done")
    await communicator.send_json_to(user_message(marker, client_id))

    again = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert again["type"] == "message"
    assert again["message"]["client_id"] == str(client_id)
    assert len(await messages_in(conversation)) == 2
    assert [r["messages"][-1]["content"] for r in simulator.requests].count(marker) == 1


# --- the answer outlives the socket ---------------------------------------------------


async def test_closing_the_socket_mid_answer_still_saves_the_full_answer(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("keep going sim:tokens=30 sim:rate=100"))
    frames = await receive_until(communicator, "delta")
    await communicator.disconnect()

    message = await wait_for_status(frames[1]["message_id"], {"complete", "error"})
    assert message.status == "complete"
    assert message.completion_tokens == 30
    assert message.content.startswith(frames[-1]["text"])


# --- failures are saved states --------------------------------------------------------


@pytest.mark.parametrize("status", [401, 404, 429, 500])
async def test_upstream_status_ends_in_error_with_provider_message(
    connect: Connect, conversation: Conversation, user: User, status: int
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message(f"fail sim:status={status}"))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    done = frames[-1]
    assert done["status"] == "error"
    assert done["error"]
    assert "sim:" not in done["error"]
    assert not [f for f in frames if f["type"] == "delta"]
    assistant = await Message.objects.aget(pk=done["message_id"])
    assert assistant.status == "error"
    assert assistant.error == done["error"]
    assert assistant.content == ""
    assert assistant.completion_tokens is None


@pytest.mark.parametrize(
    "directives",
    ["sim:fault=error sim:after=5", "sim:fault=drop sim:after=5", "sim:fault=badjson sim:after=5"],
)
async def test_upstream_failure_mid_stream_keeps_the_partial_text(
    connect: Connect, conversation: Conversation, user: User, directives: str
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message(f"partial {directives} sim:tokens=20"))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    done = frames[-1]
    text = await answer(frames)
    assert done["status"] == "error"
    assert done["error"]
    assert text
    assert done["message"]["content"] == text
    assistant = await Message.objects.aget(pk=done["message_id"])
    assert (assistant.status, assistant.content) == ("error", text)


async def test_upstream_stall_ends_in_error_after_read_timeout(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.OPENAI_READ_TIMEOUT = 0.5
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("wait sim:fault=stall sim:after=3"))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    done = frames[-1]
    assert done["status"] == "error"
    assert "sent nothing for 0.5 s" in done["error"]
    assistant = await Message.objects.aget(pk=done["message_id"])
    assert assistant.content == await answer(frames) != ""


async def test_unreachable_api_ends_in_error(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    from tests.support.servers import free_port

    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("hello?"))
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert frames[-1]["status"] == "error"
    assert "Could not connect" in frames[-1]["error"]
