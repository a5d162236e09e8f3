"""An answer's process standing still, and its database out of reach, in one process.

The process stands still for real (its event loop blocked, as a starved or frozen process's
is); the database is out of reach by a service that raises what an unreachable one raises,
on SQLite and PostgreSQL alike. The processes tests do the same with daphne, SIGSTOP and a
cut TCP connection (tests/processes/).
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import islice
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.utils import timezone

from streaming import runtime
from streaming.models import Conversation, Message
from streaming.services import answers, database
from streaming.services.answers import INTERRUPTED_MESSAGE
from streaming.services.database import to_async
from streaming.simulator import SimulatorThread
from streaming.simulator.text import answer_tokens
from tests.support.frames import receive_until, user_message
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

Connect = Callable[..., Any]


@pytest.fixture(autouse=True)
def reach() -> Iterator[None]:
    """What the process saw of the database, from scratch and back so after the test: a
    failure seen here would hold the sweeps of later tests in this process back."""
    database._Reach.failed_at = database._Reach.back_at = None
    yield
    database._Reach.failed_at = database._Reach.back_at = None


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


class Outage:
    """``answers.do_finish`` as it fares with the database out of reach: it fails while
    ``out``, and works as ever once not; each call is noted with what it found."""

    def __init__(self, out: bool = True) -> None:
        self.out = out
        self.real = answers.do_finish
        #: Per call: (whether it failed, the row's status, whether the process held it).
        self.calls: list[tuple[bool, str, bool]] = []
        self.held: Callable[[], bool] = lambda: False

    def __call__(self, message: Message, outcome: answers.Outcome) -> bool:
        status = Message.objects.get(pk=message.pk).status
        self.calls.append((self.out, status, self.held()))
        if self.out:
            raise OperationalError("connection refused")
        return self.real(message, outcome)


@pytest.fixture
def outage(settings: Any, monkeypatch: Any) -> Outage:
    """Every ending fails to be written until the test says the database is back."""
    settings.STREAM_CHECKPOINT_SECONDS = 0.1
    outage = Outage()
    monkeypatch.setattr(answers, "do_finish", outage)
    return outage


async def test_an_ending_that_cannot_be_written_is_written_once_the_database_answers(
    connect: Connect,
    conversation: Conversation,
    user: User,
    settings: Any,
    outage: Outage,
    caplog: Any,
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("cut off at the end sim:tokens=40 sim:rate=0"))
    frames = await receive_until(communicator, "start")
    message_id = frames[-1]["message_id"]
    process = runtime.current()
    outage.held = lambda: any(str(a) == message_id for a in process.answers)
    await until(lambda: len(outage.calls) >= 3, what="three failed writes of the ending")
    assert running() == 1  # kept: its checkpoints go on, and no sweep of this process takes it
    outage.out = False
    frames += await receive_until(communicator, "done")
    await until(lambda: running() == 0, what="the answer let go")
    frames += await drain(communicator)
    await communicator.disconnect()

    saved = await Message.objects.aget(pk=message_id)
    deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert (saved.status, saved.error, saved.finish_reason) == ("complete", "", "stop")
    assert saved.content == deltas == "".join(islice(answer_tokens("cut off at the end"), 40))
    assert (saved.completion_tokens, saved.prompt_tokens is not None) == (40, True)
    assert [f["type"] for f in frames].count("done") == 1
    assert frames[-1]["type"] == "done"
    # While it failed: the row stayed `streaming`, held by this process, nothing announced.
    failed = [call for call in outage.calls if call[0]]
    assert len(failed) >= 3
    assert set(failed) == {(True, "streaming", True)}
    assert outage.calls[-1] == (False, "streaming", True)
    assert "Could not save the end of answer" in caplog.text
    assert database.reachable_for() < settings.STREAM_ORPHAN_SECONDS  # the sweep waits


async def test_an_unwritten_ending_is_given_up_once_the_row_was_ended_elsewhere(
    connect: Connect, conversation: Conversation, user: User, outage: Outage
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("swept while unsaved sim:tokens=40 sim:rate=0"))
    message_id = (await receive_until(communicator, "start"))[-1]["message_id"]
    await until(lambda: len(outage.calls) >= 2, what="failed writes of the ending")
    # Another process (which reached the database) swept it meanwhile.
    await Message.objects.filter(pk=message_id).aupdate(
        status="interrupted", error=INTERRUPTED_MESSAGE, heartbeat_at=None
    )
    swept = await Message.objects.aget(pk=message_id)
    await until(lambda: running() == 0, what="the answer let go")
    tries = len(outage.calls)
    outage.out = False
    frames = await drain(communicator)
    await communicator.disconnect()

    assert "done" not in [f["type"] for f in frames]  # the sweep's `done` is the one
    saved = await Message.objects.aget(pk=message_id)
    assert (saved.status, saved.content, saved.seq) == ("interrupted", swept.content, swept.seq)
    assert len(outage.calls) == tries  # no write tried since


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


async def test_sweep_waits_after_the_database_was_out_of_reach(
    conversation: Conversation, settings: Any, caplog: Any
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.1
    settings.STREAM_ORPHAN_SECONDS = 1.0
    beat = timezone.now() - timedelta(seconds=60)
    stale = await Message.objects.acreate(
        conversation=conversation, role="assistant", status="streaming", heartbeat_at=beat
    )

    def unreachable() -> None:
        raise OperationalError("connection refused")

    with pytest.raises(OperationalError):
        await to_async(unreachable)()
    assert database.reachable_for() == 0
    await to_async(Message.objects.count)()  # back
    caplog.set_level(logging.INFO, logger="streaming.runtime")
    runtime.current()  # its sweep starts at once
    await until(lambda: "Orphan sweep held back" in caplog.text, what="the sweep held back")
    held = await Message.objects.aget(pk=stale.pk)
    assert database.reachable_for() < settings.STREAM_ORPHAN_SECONDS

    async def swept() -> bool:
        return (await Message.objects.aget(pk=stale.pk)).status == "interrupted"

    await until(swept, what="the sweep, once the database was back long enough")
    assert held.status == "streaming"
    assert database.reachable_for() >= settings.STREAM_ORPHAN_SECONDS


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
    # The quiet is long enough that, however loaded the machine, the process is still
    # waiting for the model when it stands still; it stands still longer than that quiet.
    directives = "sim:tokens=60 sim:fault=stall sim:after=4 sim:stall=1.5"
    await communicator.send_json_to(user_message(f"{prompt} {directives}"))
    frames = await receive_until(communicator, "start")
    message_id = frames[-1]["message_id"]
    while "".join(f.get("text", "") for f in frames if f["type"] == "delta") != opening:
        frames.append(await communicator.receive_json_from(timeout=5))

    swept: list[int] = []

    def swept_by_another_process() -> None:
        # On a connection of its own, as another process has: not one of this process's
        # pool, which a long run of tests in one process can leave with none to give.
        default = connections[DEFAULT_DB_ALIAS]
        options = {k: v for k, v in default.settings_dict["OPTIONS"].items() if k != "pool"}
        own = type(default)({**default.settings_dict, "OPTIONS": options}, DEFAULT_DB_ALIAS)
        table = own.ops.quote_name(Message._meta.db_table)
        key = Message._meta.get_field("id").get_db_prep_value(message_id, own)
        try:
            with own.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET status = %s, error = %s, heartbeat_at = NULL"
                    " WHERE id = %s",
                    ["interrupted", INTERRUPTED_MESSAGE, key],
                )
                swept.append(cursor.rowcount)
        finally:
            own.close()

    # This process stands still (its loop blocked) while another one sweeps the answer.
    sweeper = threading.Thread(target=swept_by_another_process)
    sweeper.start()
    sweeper.join()
    assert swept == [1], "the sweep by another process was never written"
    # The stall itself (not a wait for something): the model's rest arrives meanwhile.
    time.sleep(3.0)  # noqa: ASYNC251
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
