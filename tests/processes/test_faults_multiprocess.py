"""Faults injected into a cluster, not hoped for: each guarantee with what it rests on broken.

Two real daphne processes share Redis and the database, as in test_multiprocess.py; the
sockets are real WebSocket clients that heal as a page does (tests/support/live.py). What breaks
is chosen: a process frozen with SIGSTOP past the orphan timeout, a layer that drops,
repeats or holds back chosen messages (CHAT_FAULTS, tests/support/faults.py), a deletion from the
other process. Every wait is on a condition (a frame, a row, a connection count), never on
a guessed delay, and nothing asserts how long anything took.

Process A runs the answers under test; where a test counts A's upstream connections, A
talks to a simulator of its own, so nothing else opens or keeps one there.
"""

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import httpx
import pytest

from streaming.frames import Close
from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from streaming.simulator.text import answer_tokens
from tests.support.frames import user_message
from tests.support.live import LiveClient, frame, frames_of, reading
from tests.support.metrics import moved, scrape
from tests.support.servers import FAST_CHECKPOINTS, DaphneServer
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

# Long enough that no answer under test can end by itself while the test breaks something.
ENDLESS = "sim:tokens=5000 sim:rate=50"
SHORT = "sim:tokens=20 sim:rate=200"

Pair = Callable[..., tuple[DaphneServer, DaphneServer]]


@pytest.fixture
def own_simulator() -> Iterator[SimulatorThread]:
    """A simulator only process A talks to: its open connections are A's upstream requests."""
    with SimulatorThread() as simulator:
        yield simulator


@pytest.fixture
def pair(live_servers: Callable[..., list[DaphneServer]], redis_url: str) -> Pair:
    """Start processes A and B on one Redis and one database, each with its own extra env."""

    def _start(
        a_env: dict[str, str] | None = None, b_env: dict[str, str] | None = None
    ) -> tuple[DaphneServer, DaphneServer]:
        (a,) = live_servers(1, redis_url=redis_url, **(FAST_CHECKPOINTS | (a_env or {})))
        (b,) = live_servers(1, redis_url=redis_url, **(FAST_CHECKPOINTS | (b_env or {})))
        return a, b

    return _start


async def delete_via_page(server: DaphneServer, conversation_id: uuid.UUID, cookie: str) -> None:
    """Delete the conversation as its page does: the form, its CSRF token, the session."""
    async with httpx.AsyncClient(
        base_url=server.url, cookies={"sessionid": cookie}, trust_env=False
    ) as http:
        page = await http.get(f"/c/{conversation_id}/")
        assert page.status_code == 200
        token = http.cookies["csrftoken"]
        response = await http.post(
            f"/c/{conversation_id}/delete/", data={"csrfmiddlewaretoken": token}
        )
    assert response.status_code == 302, response.text
    assert response.headers["location"] == f"/?deleted={conversation_id}"


async def test_paused_process_never_ends_an_answer_twice(
    pair: Pair, own_simulator: SimulatorThread, conversation: Conversation, cookie: str
) -> None:
    upstream = own_simulator.simulator
    a, b = pair(a_env={"OPENAI_BASE_URL": own_simulator.base_url, "LOG_LEVEL": "INFO"})
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        async with reading(on_a, on_b):
            await on_a.send(user_message(f"frozen {ENDLESS}"))
            first = (await frame(on_b, "start"))["message_id"]
            await frame(on_b, "delta")

            async def checkpointed() -> bool:
                return (await Message.objects.aget(pk=first)).seq > 0

            await until(checkpointed, what="a checkpoint of the first answer", timeout=20.0)

        a.pause()
        try:
            # The socket on A waits, unread, as a tab on a frozen server would; B's sweep
            # ends the answer A still holds once its heartbeat is STREAM_ORPHAN_SECONDS old.
            async with reading(on_b):
                swept = await frame(on_b, "done")
                assert swept["message_id"] == first
                await on_b.send(user_message(f"while A is frozen {SHORT}"))
                second = (await frame(on_b, "start", other_than=[first]))["message_id"]
                await frame(on_b, "done", other_than=[first])
        finally:
            a.resume()

        async with reading(on_a, on_b):
            # A runs again: its next checkpoint finds the row ended, and it lets go upstream.
            abandoned = f"Answer {first} was ended elsewhere; abandoning it"
            await until(
                lambda: abandoned in a.log(), what="A abandoning the swept answer", timeout=20.0
            )
            await until(
                lambda: upstream.open_connections == 0, what="A closing its request", timeout=20.0
            )
            # A serves again. Its next answer's `done` comes, on both sockets, after anything
            # A sent about the first answer before it let go.
            await on_a.send(user_message(f"A is back {SHORT}"))
            third = (await frame(on_a, "start", other_than=[first, second]))["message_id"]
            for client in (on_a, on_b):
                await frame(client, "done", other_than=[first, second])

    swept_row = await Message.objects.aget(pk=first)
    assert swept_row.status == "interrupted"
    assert swept_row.content == swept["message"]["content"]
    assert swept_row.seq == swept["seq"] > 0
    assert on_b.text_of(first).startswith(swept_row.content)
    assert f"Answer {first} had already ended" not in a.log()  # it never tried to end it
    for client in (on_a, on_b):
        assert [d["status"] for d in frames_of(client, "done", first)] == ["interrupted"]
        assert client.shown_text(first) == swept_row.content
        assert client.assembler.mismatches == 0
        for later in (second, third):
            saved = await Message.objects.aget(pk=later)
            assert [d["status"] for d in frames_of(client, "done", later)] == [saved.status]
            assert saved.status == "complete"
            assert client.shown_text(later) == saved.content


def frames_after_done(client: LiveClient, message_id: str) -> list[dict[str, Any]]:
    """What the socket received about the answer after its (first) `done`."""
    about = [f for f in client.frames if f.get("message_id") == message_id]
    ends = [i for i, f in enumerate(about) if f["type"] == "done"]
    assert ends, f"no done for {message_id}"
    return about[ends[0] + 1 :]


async def test_process_frozen_past_the_orphan_timeout_sends_nothing_after_done(
    pair: Pair, own_simulator: SimulatorThread, conversation: Conversation, cookie: str
) -> None:
    # The model writes its opening sentence, goes quiet for 3 s, then writes the rest: A is
    # frozen while it is quiet (sending nothing), and the rest reaches A while it is frozen,
    # so A resumes with a piece to send for an answer B has ended meanwhile.
    prompt = "frozen quietly"
    opening = "".join(islice(answer_tokens(prompt), 4))  # You said “frozen quietly”.
    directives = "sim:tokens=60 sim:rate=0 sim:fault=stall sim:after=4 sim:stall=3"
    a, b = pair(a_env={"OPENAI_BASE_URL": own_simulator.base_url, "LOG_LEVEL": "INFO"})
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        async with reading(on_a, on_b):
            await on_a.send(user_message(f"{prompt} {directives}"))
            answer = (await frame(on_b, "start"))["message_id"]

            async def opening_saved() -> bool:
                row = await Message.objects.aget(pk=answer)
                return row.content == opening and all(
                    c.text_of(answer) == opening for c in (on_a, on_b)
                )

            await until(opening_saved, what="the opening sent and checkpointed", timeout=20.0)

        a.pause()
        try:
            async with reading(on_b):
                swept = await frame(on_b, "done")
        finally:
            a.resume()

        async with reading(on_a, on_b):
            # A runs again and learns from a checkpoint that the answer ended.
            abandoned = f"Answer {answer} was ended elsewhere; abandoning it"
            await until(lambda: abandoned in a.log(), what="A letting the answer go", timeout=20)
            await until(
                lambda: own_simulator.simulator.open_connections == 0,
                what="A closing its request",
                timeout=20.0,
            )
            # A serves on: its next answer reaches both sockets, after whatever A would have
            # sent about the first one.
            await on_a.send(user_message(f"A is back {SHORT}"))
            later = (await frame(on_a, "start", other_than=[answer]))["message_id"]
            for client in (on_a, on_b):
                await frame(client, "done", other_than=[answer])

    row = await Message.objects.aget(pk=answer)
    assert swept["message_id"] == answer
    assert (row.status, row.content) == ("interrupted", opening)
    assert "This process stood still" in a.log()
    for client in (on_a, on_b):
        # Nothing about the answer after its `done`: not the piece A held, nor a sync reply.
        assert frames_after_done(client, answer) == []
        assert [d["status"] for d in frames_of(client, "done", answer)] == ["interrupted"]
        assert client.text_of(answer) == client.shown_text(answer) == opening
        assert (await Message.objects.aget(pk=later)).status == "complete"


@pytest.mark.parametrize(
    "b_faults",
    [
        pytest.param([], id="stop-message-delivered"),
        pytest.param(
            [{"type": "answer.stop", "action": "drop", "times": 0}], id="stop-message-dropped"
        ),
    ],
)
async def test_stop_from_the_other_process_before_the_answer_starts(
    pair: Pair,
    own_simulator: SimulatorThread,
    conversation: Conversation,
    cookie: str,
    b_faults: list[dict[str, Any]],
) -> None:
    # With every answer.stop B sends dropped, only the row's flag can reach A.
    b_env = {"CHAT_FAULTS": json.dumps(b_faults)} if b_faults else {}
    a, b = pair(a_env={"OPENAI_BASE_URL": own_simulator.base_url}, b_env=b_env)
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
        reading(on_a),
    ):
        await on_a.send(user_message(f"stop me early {ENDLESS}"))
        await on_b.receive_until("message")
        await on_b.send({"type": "stop"})  # at once: the answer on A has barely begun
        async with reading(on_b):
            done_b = await frame(on_b, "done")
            message_id = done_b["message_id"]
            done_a = await frame(on_a, "done")
            await until(
                lambda: own_simulator.simulator.open_connections == 0,
                what="A closing its upstream request",
                timeout=20.0,
            )

            # Both sockets go on: an answer sent from each process completes on both.
            later: list[str] = []
            for sender in (on_a, on_b):
                await sender.send(user_message(f"still usable {SHORT}"))
                start = await frame(sender, "start", other_than=[message_id, *later])
                later.append(start["message_id"])
                for client in (on_a, on_b):
                    await frame(client, "done", other_than=[message_id, *later[:-1]])

    saved = await Message.objects.aget(pk=message_id)
    assert done_a["message_id"] == message_id
    assert saved.status == done_a["status"] == done_b["status"] == "cancelled"
    assert saved.content == done_a["message"]["content"] == done_b["message"]["content"]
    assert len(saved.content.split()) < 5000
    for client in (on_a, on_b):
        assert len(frames_of(client, "done", message_id)) == 1
        assert client.shown_text(message_id) == saved.content
        for later_id in later:
            answer = await Message.objects.aget(pk=later_id)
            assert [d["status"] for d in frames_of(client, "done", later_id)] == [answer.status]
            assert answer.status == "complete"
            assert client.shown_text(later_id) == answer.content


async def test_delete_from_the_other_process_mid_answer(
    pair: Pair, own_simulator: SimulatorThread, conversation: Conversation, cookie: str
) -> None:
    upstream = own_simulator.simulator
    a, b = pair(a_env={"OPENAI_BASE_URL": own_simulator.base_url})
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
        reading(on_a, on_b),
    ):
        await on_a.send(user_message(f"delete me {ENDLESS}"))
        message_id = (await frame(on_b, "start"))["message_id"]
        await frame(on_b, "delta")
        await until(
            lambda: upstream.open_connections == 1, what="A's upstream request", timeout=20.0
        )

        await delete_via_page(b, conversation.id, cookie)
        closed = (on_a, on_b)
        await until(
            lambda: all(c.close_code is not None for c in closed), what="both closing", timeout=20.0
        )
        await until(
            lambda: upstream.open_connections == 0,
            what="A closing its upstream request",
            timeout=20.0,
        )

    for client in (on_a, on_b):
        assert client.close_code == Close.DELETED
        assert client.frames[-1]["type"] == "deleted"  # and nothing after it
        assert frames_of(client, "done") == []
    # Hidden and kept for the undo window; the answer ended once, as stopped.
    assert (await Conversation.objects.aget(pk=conversation.id)).deleted_at is not None

    async def stopped() -> bool:
        return (await Message.objects.aget(pk=message_id)).status == "cancelled"

    await until(stopped, what="the answer saved as stopped", timeout=20.0)


def _seen_gap(client: LiveClient) -> bool:
    return client.assembler.gaps > 0


def _seen_twice(client: LiveClient) -> bool:
    deltas = [(f["message_id"], f["seq"]) for f in frames_of(client, "delta")]
    return len(set(deltas)) < len(deltas)


def _seen_unknown(client: LiveClient) -> bool:
    return client.assembler.unknown > 0 and not frames_of(client, "start")


def _seen_done_late(client: LiveClient) -> bool:
    # The lost `done` comes back as the reply to a quiet spell's sync, after the last delta.
    return True


@pytest.mark.parametrize(
    ("faults", "fault_seen"),
    [
        pytest.param([{"type": "chat.done", "action": "drop"}], _seen_done_late, id="done-dropped"),
        pytest.param(
            [{"type": "chat.delta", "action": "drop", "skip": 2, "times": 3}],
            _seen_gap,
            id="deltas-dropped",
        ),
        pytest.param(
            [{"type": "chat.delta", "action": "duplicate", "times": 0}],
            _seen_twice,
            id="deltas-duplicated",
        ),
        pytest.param(
            [{"type": "chat.delta", "action": "delay", "skip": 1, "seconds": 1.0}],
            _seen_gap,
            id="delta-out-of-order",
        ),
        pytest.param(
            [{"type": "chat.message", "action": "drop"}, {"type": "chat.start", "action": "drop"}],
            _seen_unknown,
            id="message-and-start-dropped",
        ),
    ],
)
@pytest.mark.parametrize("watchers", ["a-and-b", "a-only"])
async def test_lost_and_repeated_frames_heal_on_both_processes(
    pair: Pair,
    conversation: Conversation,
    cookie: str,
    faults: list[dict[str, Any]],
    fault_seen: Callable[[LiveClient], bool],
    watchers: str,
) -> None:
    # The faults apply to what A sends: its answer's events reach both processes' sockets,
    # through Redis; or, with no socket on B, A's own straight (local delivery).
    a, b = pair(a_env={"CHAT_FAULTS": json.dumps(faults), "STREAM_LOCAL_DELIVERY": "true"})
    before = await scrape(a)
    async with contextlib.AsyncExitStack() as stack:
        healed = [
            await stack.enter_async_context(LiveClient(server, conversation.id, cookie))
            for server in ((a, b) if watchers == "a-and-b" else (a,))
        ]
        await stack.enter_async_context(reading(*healed))
        await healed[0].send(user_message("faulty sim:tokens=150 sim:rate=100"))
        message_id = (await frame(healed[0], "done"))["message_id"]
        await until(
            lambda: all(message_id in c.assembler.ended for c in healed),
            what="every socket knowing it ended",
            timeout=20.0,
        )
    after = await scrape(a)

    saved = await Message.objects.aget(pk=message_id)
    assert saved.status == "complete"
    assert saved.content
    for client in healed:
        assert fault_seen(client)
        assert client.assembler.ended[message_id]["status"] == "complete"
        assert client.shown_text(message_id) == saved.content
        assert saved.content.startswith(client.text_of(message_id))
        assert client.assembler.mismatches == 0
    straight = moved(before, after, "chatsite_answer_pieces_total", way="here")
    assert (straight > 0) == (watchers == "a-only")
