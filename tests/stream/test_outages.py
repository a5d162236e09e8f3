"""An answer's process standing still, and its database out of reach, in one process.

The process stands still for real (its event loop blocked, as a starved or frozen process's
is); the database is out of reach by a service that raises what an unreachable one raises,
on SQLite and PostgreSQL alike. The processes tests do the same with daphne and SIGSTOP
(tests/processes/).
"""

import threading
import time
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import OperationalError, connection

from streaming import runtime
from streaming.models import Conversation, Message
from streaming.services import answers
from streaming.services.answers import INTERRUPTED_MESSAGE
from streaming.services.database import to_async
from streaming.simulator import SimulatorThread
from streaming.simulator.text import answer_tokens
from tests.support.frames import receive_until, user_message
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

Connect = Callable[..., Any]


@pytest.fixture
def own_simulator(settings: Any) -> Iterator[SimulatorThread]:
    """A simulator of the test's own, so its open connections are this test's alone."""
    with SimulatorThread(rate=0) as simulator:
        settings.OPENAI_BASE_URL = simulator.base_url
        yield simulator


def running() -> int:
    return len(runtime.current().answers)


async def drain(communicator: WebsocketCommunicator) -> list[dict[str, Any]]:
    """The frames the socket has received and nobody read yet."""
    frames = []
    while not communicator.output_queue.empty():
        frames.append(await communicator.receive_json_from())
    return frames


async def test_answer_whose_heartbeat_cannot_be_written_stops_sending_before_a_sweep_could(
    connect: Connect,
    conversation: Conversation,
    user: User,
    settings: Any,
    monkeypatch: Any,
) -> None:
    """Cut off from the database while another process reaches it (a partition): that one
    sweeps the answer once its heartbeat is STREAM_ORPHAN_SECONDS old, and the answer sent
    nothing after its `done`."""
    settings.STREAM_CHECKPOINT_SECONDS = 0.1
    settings.STREAM_ORPHAN_SECONDS = 0.8
    real = answers.do_checkpoints
    cut = threading.Event()

    def checkpoints(batch: list[answers.Checkpoint]) -> dict[Any, answers.Saved]:
        if cut.is_set():
            raise OperationalError("connection refused")
        return real(batch)

    monkeypatch.setattr(answers, "do_checkpoints", checkpoints)
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("partitioned sim:tokens=400 sim:rate=100"))
    frames = await receive_until(communicator, "delta")
    message_id = frames[-1]["message_id"]
    cut.set()

    async def swept_elsewhere() -> bool:
        return bool(await to_async(answers.do_sweep_orphans)())

    await until(swept_elsewhere, what="another process's sweep")
    frames += await receive_until(communicator, "done")
    cut.clear()  # reached again: the next checkpoint finds the row ended
    await until(lambda: running() == 0, what="the answer let go")
    frames += await drain(communicator)
    await communicator.disconnect()

    done = frames.index(next(f for f in frames if f["type"] == "done"))
    assert frames[done]["message_id"] == message_id
    assert [f for f in frames[done + 1 :] if f.get("message_id") == message_id] == []
    saved = await Message.objects.aget(pk=message_id)
    assert saved.status == "interrupted"
    assert saved.content == frames[done]["message"]["content"]
    assert (saved.completion_tokens, saved.finish_reason) == (None, "")


async def test_process_that_stood_still_sends_nothing_for_an_answer_ended_meanwhile(
    connect: Connect,
    conversation: Conversation,
    user: User,
    settings: Any,
    own_simulator: SimulatorThread,
    caplog: Any,
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    prompt = "stood still"
    opening = "".join(islice(answer_tokens(prompt), 4))
    communicator = await connect(conversation.id, user)
    # The opening at once, then the model is quiet a moment, then the rest comes at once:
    # while this process stands still, so that it has a piece to send when it runs again.
    directives = "sim:tokens=60 sim:fault=stall sim:after=4 sim:stall=0.3"
    await communicator.send_json_to(user_message(f"{prompt} {directives}"))
    frames = await receive_until(communicator, "start")
    message_id = frames[-1]["message_id"]
    while "".join(f.get("text", "") for f in frames if f["type"] == "delta") != opening:
        frames.append(await communicator.receive_json_from(timeout=5))

    def swept_by_another_process() -> None:
        try:
            Message.objects.filter(pk=message_id).update(
                status="interrupted", error=INTERRUPTED_MESSAGE, heartbeat_at=None
            )
        finally:
            connection.close()

    # This process stands still (its loop blocked) while another one sweeps the answer.
    sweeper = threading.Thread(target=swept_by_another_process)
    sweeper.start()
    sweeper.join()
    # The stall itself (not a wait for something): the model's rest arrives meanwhile.
    time.sleep(1.0)  # noqa: ASYNC251
    stood_still = len(frames)
    await until(lambda: running() == 0, what="the answer let go")
    await until(lambda: own_simulator.simulator.open_connections == 0, what="upstream closed")
    frames += await drain(communicator)
    await communicator.disconnect()

    assert frames[stood_still:] == []  # the model's rest came, and went nowhere
    saved = await Message.objects.aget(pk=message_id)
    assert saved.status == "interrupted"
    assert opening.startswith(saved.content)  # the last checkpoint's
    assert "This process stood still" in caplog.text
    assert f"Answer {message_id} was ended elsewhere; abandoning it" in caplog.text
