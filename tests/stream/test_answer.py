"""One answer's life and its every ending, on one process (real ASGI stack, DB, simulator).

Each test breaks what a guarantee rests on: a stop before the answer's first step or with
its channel-layer message lost, a row swept or deleted under a running answer, a provider
that refuses the token-limit field, an answer that would never end.
"""

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from streaming import runtime
from streaming.exceptions import RateLimited
from streaming.models import Conversation, Message
from streaming.services.answers import INTERRUPTED_MESSAGE
from streaming.services.deletion import do_delete_conversation
from streaming.simulator import SimulatorThread
from streaming.simulator.payloads import status_error
from streaming.simulator.stamps import read_stamps
from tests.support.assembler import Assembler
from tests.support.faults import Fault, faulty_layer
from tests.support.frames import receive_until, user_message
from tests.support.servers import free_port
from tests.support.waiting import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("both_layers")]

Connect = Callable[..., Any]


@pytest.fixture
def own_simulator(settings: Any) -> Iterator[SimulatorThread]:
    """A simulator of the test's own, so its open connections are this test's alone."""
    with SimulatorThread(rate=50.0) as simulator:
        settings.OPENAI_BASE_URL = simulator.base_url
        yield simulator


@pytest.fixture
def faulty(settings: Any, both_layers: str) -> Any:
    """The test's layer, wrapped so that chosen messages can be lost, repeated or held."""
    settings.CHANNEL_LAYERS = {"default": faulty_layer(settings.CHANNEL_LAYERS["default"])}
    return get_channel_layer()


async def frames_until_done(communicator: WebsocketCommunicator) -> list[dict[str, Any]]:
    return await receive_until(communicator, "done", timeout=10)


def deltas_text(frames: list[dict[str, Any]]) -> str:
    deltas = [f for f in frames if f["type"] == "delta"]
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    return "".join(d["text"] for d in deltas)


def answers_running() -> int:
    return len(runtime.current().answers)


# --- stop ----------------------------------------------------------------------------------


async def test_stop_before_the_answers_first_step_cancels_it_and_the_socket_stays_usable(
    connect: Connect, conversation: Conversation, user: User, own_simulator: SimulatorThread
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("stopped at once sim:tokens=1000"))
    await communicator.send_json_to({"type": "stop"})  # the answer task has not run yet
    frames = await frames_until_done(communicator)
    done = frames[-1]
    await communicator.send_json_to(user_message("and then sim:tokens=5 sim:rate=0"))
    after = await frames_until_done(communicator)
    await communicator.disconnect()

    assert done["status"] == "cancelled"
    assert done["message"]["content"] == deltas_text(frames)
    assert done["seq"] == len([f for f in frames if f["type"] == "delta"])
    assert [f["type"] for f in frames].count("done") == 1
    assert after[-1]["status"] == "complete"
    await until(lambda: own_simulator.simulator.open_connections == 0)
    saved = await Message.objects.aget(pk=done["message_id"])
    assert (saved.status, saved.content) == ("cancelled", done["message"]["content"])


async def test_stop_whose_layer_message_is_lost_still_ends_the_answer_by_the_database(
    connect: Connect,
    conversation: Conversation,
    user: User,
    faulty: Any,
    settings: Any,
    own_simulator: SimulatorThread,
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    faulty.faults.append(Fault(type="answer.stop", action="drop", times=0))
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("lost stop sim:tokens=5000"))
    frames = await receive_until(communicator, "delta")
    await communicator.send_json_to({"type": "stop"})
    frames += await frames_until_done(communicator)
    await communicator.disconnect()

    done = frames[-1]
    assert ("drop", "answer.stop") in faulty.applied
    assert done["status"] == "cancelled"
    assert done["message"]["content"] == deltas_text(frames)
    saved = await Message.objects.aget(pk=done["message_id"])
    assert (saved.status, saved.content, saved.seq) == (
        "cancelled",
        done["message"]["content"],
        done["seq"],
    )
    await until(lambda: own_simulator.simulator.open_connections == 0)


async def test_stop_at_any_moment_sends_every_piece_before_one_done(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    rng = random.Random(6)
    communicator = await connect(conversation.id, user)
    for _ in range(6):
        await communicator.send_json_to(user_message("stop me sim:tokens=400 sim:rate=400"))
        await receive_until(communicator, "start")
        await asyncio.sleep(rng.uniform(0, 0.3))  # a random moment, not a wait for anything
        await communicator.send_json_to({"type": "stop"})
        frames = await frames_until_done(communicator)
        done = frames[-1]
        # Every piece the answer kept went out, in order, before its one done.
        assert done["message"]["content"] == deltas_text(frames)
        assert done["seq"] == len([f for f in frames if f["type"] == "delta"])
        assert done["status"] in {"cancelled", "complete"}
    await communicator.disconnect()
    statuses = [m.status async for m in Message.objects.filter(role="assistant")]
    assert len(statuses) == 6
    assert "streaming" not in statuses


# --- the row decides -------------------------------------------------------------------------


async def test_answer_whose_row_was_swept_stops_silently_and_closes_upstream(
    connect: Connect,
    conversation: Conversation,
    user: User,
    settings: Any,
    own_simulator: SimulatorThread,
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("swept sim:tokens=5000"))
    start = (await receive_until(communicator, "start"))[-1]
    message_id = start["message_id"]
    await receive_until(communicator, "delta")
    # Another process's sweep ends the row (as if this process had stalled).
    await Message.objects.filter(pk=message_id).aupdate(
        status="interrupted", error=INTERRUPTED_MESSAGE, heartbeat_at=None
    )
    swept = await Message.objects.aget(pk=message_id)
    await until(lambda: answers_running() == 0)
    await until(lambda: own_simulator.simulator.open_connections == 0)
    frames = []
    while not communicator.output_queue.empty():
        frames.append(await communicator.receive_json_from())
    await communicator.disconnect()

    assert "done" not in [f["type"] for f in frames]  # the sweep's done is the only one
    saved = await Message.objects.aget(pk=message_id)
    assert (saved.status, saved.content, saved.seq) == ("interrupted", swept.content, swept.seq)


async def test_deleting_a_conversation_mid_answer_closes_upstream_and_tells_the_tab(
    connect: Connect, conversation: Conversation, user: User, own_simulator: SimulatorThread
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("doomed sim:tokens=5000"))
    await receive_until(communicator, "delta")
    await sync_to_async(do_delete_conversation)(conversation)
    frames = await receive_until(communicator, "deleted")
    closed = await communicator.receive_output(timeout=5)

    assert frames[-1]["message"] == "This conversation was deleted."
    assert closed == {"type": "websocket.close", "code": 4404}
    assert "done" not in [f["type"] for f in frames]
    await until(lambda: own_simulator.simulator.open_connections == 0)
    await until(lambda: answers_running() == 0)
    # Kept, hidden, for the undo window: the answer saved as stopped, with its text so far.
    answer = await Message.objects.aget(conversation_id=conversation.id, role="assistant")
    assert answer.status == "cancelled"
    assert answer.content
    assert (await Conversation.objects.aget(pk=conversation.id)).deleted_at is not None


async def test_frames_for_a_deleted_conversation_say_so_instead_of_failing(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    # Deleted by another process whose message never came: this socket learns it now.
    await Conversation.objects.filter(pk=conversation.id).adelete()
    await communicator.send_json_to(user_message("anyone there?"))
    frame = await communicator.receive_json_from(timeout=5)
    closed = await communicator.receive_output(timeout=5)

    assert frame == {"type": "deleted", "message": "This conversation was deleted."}
    assert closed == {"type": "websocket.close", "code": 4404}
    assert not await Message.objects.filter(conversation_id=conversation.id).aexists()


# --- resync and ping -----------------------------------------------------------------------


async def test_resync_sends_a_fresh_snapshot_and_the_rest_of_the_active_answer(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("resync me sim:tokens=300 sim:rate=200"))
    await receive_until(communicator, "delta")
    await communicator.send_json_to({"type": "resync"})
    snapshot = (await receive_until(communicator, "snapshot"))[-1]
    assembler = Assembler()
    assembler.feed(snapshot)
    while True:
        frame = await communicator.receive_json_from(timeout=10)
        request = assembler.feed(frame)
        if request is not None:
            await communicator.send_json_to(request)
        if frame["type"] == "done":
            break
    await communicator.disconnect()

    assert [m["role"] for m in snapshot["messages"]] == ["user", "assistant"]
    active = snapshot["active"]
    assert active["message_id"] == frame["message_id"]
    assert assembler.text[frame["message_id"]] == frame["message"]["content"]


async def test_ping_describes_what_is_stored(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to({"type": "ping"})
    empty = await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to(user_message("hello there sim:tokens=3 sim:rate=0"))
    done = (await frames_until_done(communicator))[-1]
    await communicator.send_json_to({"type": "ping"})
    pong = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    default_model = {"provider_id": None, "model": "simulated", "available": True}
    assert empty == {
        "type": "pong",
        "title": "",
        "model_choice": default_model,
        "count": 0,
        "last_id": None,
        "last_status": None,
    }
    assert pong == {
        "type": "pong",
        "title": "hello there sim:tokens=3 sim:rate=0",
        "model_choice": default_model,
        "count": 2,
        "last_id": done["message_id"],
        "last_status": "complete",
    }


async def test_lost_done_is_healed_by_the_quiet_sync(
    connect: Connect, conversation: Conversation, user: User, faulty: Any
) -> None:
    faulty.faults.append(Fault(type="chat.done", action="drop"))
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("lose my end sim:tokens=20 sim:rate=200"))
    frames = await receive_until(communicator, "start")
    message_id = frames[-1]["message_id"]
    await until(lambda: Message.objects.filter(pk=message_id, status="complete").aexists())
    assembler = Assembler()
    assembler.feed(communicator.snapshot)
    for frame in frames:
        assembler.feed(frame)
    while not communicator.output_queue.empty():
        assembler.feed(await communicator.receive_json_from())
    assert message_id not in assembler.ended  # the done was lost
    for request in assembler.quiet():  # what a client does after a quiet spell
        await communicator.send_json_to(request)
    done = (await frames_until_done(communicator))[-1]
    assembler.feed(done)
    await communicator.disconnect()
    # The answer's own `done` leaves after its commit, on the door's time: under load the
    # sync's reply from the database can come first.
    await until(lambda: ("drop", "chat.done") in faulty.applied, what="the done dropped")
    saved = await Message.objects.aget(pk=message_id)
    assert assembler.shown(message_id) == saved.content == done["message"]["content"]
    assert done["seq"] == saved.seq


# --- waits to retry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "Rate limited by the provider"), (503, "The provider is unavailable (503)")],
)
async def test_wait_to_retry_is_announced_with_its_delay_and_our_words_only(
    connect: Connect,
    conversation: Conversation,
    user: User,
    simulator: SimulatorThread,
    status: int,
    reason: str,
) -> None:
    communicator = await connect(conversation.id, user)
    # `sim:times` counts per message text for the whole session: make it unique.
    content = f"wait {uuid.uuid4()} sim:status={status} sim:retry_after=1 sim:times=1 sim:tokens=5"
    await communicator.send_json_to(user_message(content))
    frames = await frames_until_done(communicator)
    await communicator.disconnect()

    done = frames[-1]
    kinds = [f["type"] for f in frames]
    retrying = [f for f in frames if f["type"] == "retrying"]
    # The provider's Retry-After (1 s) outweighs the first backoff (at most 0.5 s).
    assert retrying == [
        {
            "type": "retrying",
            "message_id": done["message_id"],
            "attempt": 1,
            "delay": 1.0,
            "reason": reason,
        }
    ]
    assert kinds.index("start") < kinds.index("retrying") < kinds.index("delta")
    assert done["status"] == "complete"
    assert done["message"]["content"] == deltas_text(frames)
    provider_message = status_error(status, "simulated")["error"]["message"]
    assert provider_message not in json.dumps(retrying)
    assert simulator.base_url not in json.dumps(retrying)


async def test_wait_to_reach_an_unreachable_provider_is_announced_before_each_retry(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    port = free_port()  # nothing listens there
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    settings.OPENAI_MAX_RETRIES = 2
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("anyone there?"))
    frames = await frames_until_done(communicator)
    await communicator.disconnect()

    done = frames[-1]
    retrying = [f for f in frames if f["type"] == "retrying"]
    assert [(f["attempt"], f["reason"]) for f in retrying] == [
        (1, "Could not reach the provider"),
        (2, "Could not reach the provider"),
    ]
    # Exponential backoff with jitter: 0.5 s, then 1 s, each between half and all of it.
    assert 0.25 <= retrying[0]["delay"] <= 0.5 <= retrying[1]["delay"] <= 1.0
    assert (done["status"], done["error"]) == ("error", "Could not connect to the model API.")
    assert str(port) not in json.dumps(retrying)


async def test_lost_retrying_notice_changes_nothing_about_the_answer(
    connect: Connect, conversation: Conversation, user: User, faulty: Any
) -> None:
    faulty.faults.append(Fault(type="chat.retrying", action="drop"))
    communicator = await connect(conversation.id, user)
    content = f"lost notice {uuid.uuid4()} sim:status=503 sim:times=1 sim:tokens=5 sim:rate=0"
    await communicator.send_json_to(user_message(content))
    frames = await frames_until_done(communicator)
    await communicator.disconnect()

    assert ("drop", "chat.retrying") in faulty.applied
    kinds = [f["type"] for f in frames]
    assert "retrying" not in kinds
    assert (kinds.count("start"), kinds.count("done")) == (1, 1)
    done = frames[-1]
    assert done["status"] == "complete"
    assert done["message"]["content"] == deltas_text(frames)


# --- bounded answers -----------------------------------------------------------------------


async def test_max_tokens_is_sent_in_the_field_the_provider_accepts(
    connect: Connect,
    conversation: Conversation,
    user: User,
    settings: Any,
    own_simulator: SimulatorThread,
) -> None:
    settings.OPENAI_MAX_TOKENS = 7
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("limit sim:tokens=50 sim:rate=0"))
    plain = (await frames_until_done(communicator))[-1]
    await communicator.send_json_to(
        user_message("newer model sim:tokens=50 sim:rate=0 sim:refuse=max_tokens")
    )
    refused = (await frames_until_done(communicator))[-1]
    await communicator.disconnect()

    assert (plain["status"], plain["finish_reason"]) == ("complete", "length")
    assert (refused["status"], refused["finish_reason"]) == ("complete", "length")
    sent = [(r["max_tokens"], r["max_completion_tokens"]) for r in own_simulator.requests]
    # Asked with max_tokens, refused, asked again at once with max_completion_tokens.
    assert sent == [(7, None), (7, None), (None, 7)]
    assert len(refused["message"]["content"].split()) <= 7


async def test_no_limit_sends_no_token_field(
    connect: Connect,
    conversation: Conversation,
    user: User,
    settings: Any,
    own_simulator: SimulatorThread,
) -> None:
    settings.OPENAI_MAX_TOKENS = 0
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("no limit sim:tokens=5 sim:rate=0"))
    done = (await frames_until_done(communicator))[-1]
    await communicator.disconnect()

    assert done["finish_reason"] == "stop"
    request = own_simulator.requests[-1]
    assert (request["max_tokens"], request["max_completion_tokens"]) == (None, None)


async def test_answer_longer_than_the_cap_is_cut_there_and_upstream_closed(
    connect: Connect,
    conversation: Conversation,
    user: User,
    settings: Any,
    own_simulator: SimulatorThread,
) -> None:
    settings.STREAM_MAX_ANSWER_CHARS = 120
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("ramble sim:tokens=100000 sim:rate=2000"))
    frames = await frames_until_done(communicator)
    await communicator.disconnect()

    done = frames[-1]
    assert (done["status"], done["finish_reason"]) == ("complete", "length")
    assert "120 characters" in done["error"]
    assert len(done["message"]["content"]) == 120
    assert deltas_text(frames) == done["message"]["content"]
    await until(lambda: own_simulator.simulator.open_connections == 0)
    saved = await Message.objects.aget(pk=done["message_id"])
    assert len(saved.content) == 120


async def test_a_piece_is_not_held_back_when_the_model_then_pauses(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    # Two tokens 20 ms apart, then the model is silent for 2 s: the second token must go
    # out when it arrives, not wait for the model to speak again.
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(
        user_message(
            "pause sim:tokens=4 sim:rate=50 sim:stamp=1 sim:fault=stall sim:after=2 sim:stall=2"
        )
    )
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    stamps_per_delta = [read_stamps(f["text"])[0] for f in frames if f["type"] == "delta"]
    assert sum(len(stamps) for stamps in stamps_per_delta) == 4
    # No piece holds tokens from both sides of the silence.
    assert all(max(s) - min(s) < 1 for s in stamps_per_delta if s)


async def test_what_arrives_while_a_send_is_under_way_goes_out_as_one_delta_after_it(
    connect: Connect, conversation: Conversation, user: User, faulty: Any
) -> None:
    # The layer takes a whole second over the second delta, while the model goes on at
    # 100 tokens a second: those tokens wait for that send, not for a timer, and then go
    # out together, in order, nothing lost.
    faulty.faults.append(Fault(type="chat.delta", action="slow", skip=1, seconds=1.0))
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(
        user_message("slow layer sim:tokens=200 sim:rate=100 sim:stamp=1")
    )
    frames = await receive_until(communicator, "done", timeout=30)
    await communicator.disconnect()

    assert ("slow", "chat.delta") in faulty.applied
    deltas = [f for f in frames if f["type"] == "delta"]
    done = frames[-1]
    assert deltas_text(frames) == done["message"]["content"]
    assert len(read_stamps(done["message"]["content"])[0]) == 200
    # The third delta holds what came during the second's send: many tokens, not one.
    assert len(read_stamps(deltas[2]["text"])[0]) > 10


async def test_room_counts_answers_still_being_saved_against_the_process_limit(
    settings: Any,
) -> None:
    """Two messages at once on a process with room for one: the second is refused at once,
    even though the first is not running yet (its rows are still being written)."""
    settings.STREAM_MAX_ANSWERS = 1
    with runtime.room(), pytest.raises(RateLimited), runtime.room():
        pass
    with runtime.room():  # the place is free again once the first let it go
        pass
