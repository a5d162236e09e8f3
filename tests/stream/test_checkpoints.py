"""Checkpoints, the orphan sweep and shutdown: nothing is lost when a process dies."""

import asyncio
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from streaming import layer, retries, runtime
from streaming.answer import Answer
from streaming.exceptions import UpstreamError
from streaming.models import Conversation, Message, group_name
from streaming.services import answers
from streaming.services.answers import (
    INTERRUPTED_MESSAGE,
    Checkpoint,
    Outcome,
    Saved,
    do_checkpoints,
    do_finish,
    do_sweep_orphans,
)
from streaming.services.database import db_executor, duty_executor, to_async
from streaming.services.stops import do_request_stop
from tests.support.frames import answering, receive_until, user_message
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

Connect = Callable[..., Any]


def streaming_answer(conversation: Conversation, *, age: float, content: str = "") -> Message:
    """An answer left `streaming` whose last heartbeat was ``age`` seconds ago."""
    beat = timezone.now() - timedelta(seconds=age)
    return Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="streaming",
        content=content,
        seq=3,
        heartbeat_at=beat,
        created_at=beat,
    )


async def test_checkpoints_append_the_new_text_and_seq_in_batches_not_per_chunk(
    connect: Connect, conversation: Conversation, user: User, settings: Any, monkeypatch: Any
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    batches: list[list[Checkpoint]] = []
    real_checkpoints = do_checkpoints

    def counting_checkpoints(checkpoints: list[Checkpoint]) -> Any:
        saved = real_checkpoints(checkpoints)
        batches.append(list(checkpoints))  # once written: the test reads the row after this
        return saved

    monkeypatch.setattr(answers, "do_checkpoints", counting_checkpoints)
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("checkpoint me sim:tokens=120 sim:rate=100"))
    frames = await receive_until(communicator, "delta")
    message_id = frames[-1]["message_id"]
    while not any(c.seq for batch in batches for c in batch):
        frames += [await communicator.receive_json_from(timeout=5)]
    during = await Message.objects.aget(pk=message_id)
    frames += await receive_until(communicator, "done")
    await communicator.disconnect()

    assert during.status == "streaming"
    assert during.seq > 0
    assert during.content
    assert during.heartbeat_at is not None
    deltas = [f["text"] for f in frames if f["type"] == "delta"]
    # Each checkpoint appends exactly the deltas sent since the one before it.
    for checkpoint in (c for batch in batches for c in batch):
        assert checkpoint.saved_seq is not None
        assert checkpoint.text == "".join(deltas[checkpoint.saved_seq : checkpoint.seq])
    # About one per 0.2 s over a ~1.2 s answer: far fewer than its 120 chunks.
    assert 2 <= len(batches) < 30


def test_checkpoint_appends_once_even_when_a_write_is_repeated(conversation: Conversation) -> None:
    answer = streaming_answer(conversation, age=0, content="abc")  # seq 3
    first = Checkpoint(answer.pk, saved_seq=3, seq=5, text="de")

    assert do_checkpoints([first]) == {answer.pk: Saved.SAVED}
    # The same write again (its first outcome was unknown): the row has it, once.
    assert do_checkpoints([first]) == {answer.pk: Saved.SAVED}
    answer.refresh_from_db()
    assert (answer.content, answer.seq) == ("abcde", 5)
    # A write from a seq the row no longer holds is not applied, and said so...
    later = Checkpoint(answer.pk, saved_seq=3, seq=6, text="def")
    assert do_checkpoints([later]) == {answer.pk: Saved.UNSURE}
    answer.refresh_from_db()
    assert (answer.content, answer.seq) == ("abcde", 5)
    # ...and the answer rewrites its whole text instead.
    whole = Checkpoint(answer.pk, saved_seq=None, seq=6, text="abcdef")
    assert do_checkpoints([whole]) == {answer.pk: Saved.SAVED}
    answer.refresh_from_db()
    assert (answer.content, answer.seq) == ("abcdef", 6)


def test_checkpoint_of_an_ended_or_deleted_answer_writes_nothing(
    conversation: Conversation,
) -> None:
    swept = streaming_answer(conversation, age=0, content="kept")
    Message.objects.filter(pk=swept.pk).update(status="interrupted")
    gone = uuid.uuid4()

    saved = do_checkpoints(
        [
            Checkpoint(swept.pk, saved_seq=3, seq=4, text=" more"),
            Checkpoint(gone, saved_seq=0, seq=1, text="x"),
        ]
    )

    assert saved == {swept.pk: Saved.GONE, gone: Saved.GONE}
    swept.refresh_from_db()
    assert (swept.status, swept.content, swept.seq) == ("interrupted", "kept", 3)
    assert not Message.objects.filter(pk=gone).exists()


def test_checkpoint_reports_a_stop_requested_in_the_database(conversation: Conversation) -> None:
    answer = streaming_answer(conversation, age=0, content="abc")

    assert do_request_stop(conversation.pk) == [answer.pk]
    saved = do_checkpoints([Checkpoint(answer.pk, 3, 4, "d")])

    assert saved == {answer.pk: Saved.STOP}
    answer.refresh_from_db()
    assert (answer.status, answer.content) == ("streaming", "abcd")


def test_finish_of_an_answer_no_longer_streaming_writes_and_announces_nothing(
    conversation: Conversation,
) -> None:
    answer = streaming_answer(conversation, age=0, content="checkpointed")
    Message.objects.filter(pk=answer.pk).update(status="interrupted")
    outcome = Outcome(status="complete", content="checkpointed and more", seq=9)

    assert do_finish(answer, outcome) is False

    answer.refresh_from_db()
    assert (answer.status, answer.content, answer.seq) == ("interrupted", "checkpointed", 3)


def test_sweep_marks_stale_answers_interrupted_and_keeps_their_text(
    conversation: Conversation, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    stale = streaming_answer(conversation, age=60, content="half an ans")
    other = Conversation.objects.create(owner=conversation.owner)
    fresh = streaming_answer(other, age=1, content="still going")

    assert len(do_sweep_orphans()) == 1

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.content) == ("interrupted", "half an ans")
    assert stale.error == INTERRUPTED_MESSAGE
    assert stale.heartbeat_at is None
    assert (fresh.status, fresh.content) == ("streaming", "still going")
    assert len(do_sweep_orphans()) == 0


def test_sweep_spares_answers_this_process_is_generating(
    conversation: Conversation, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    stale = streaming_answer(conversation, age=60)

    assert len(do_sweep_orphans(alive=[stale.pk])) == 0
    stale.refresh_from_db()
    assert stale.status == "streaming"


async def test_the_sweep_spares_an_answer_started_while_it_waited_for_its_thread(
    conversation: Conversation, settings: Any
) -> None:
    # A sweep that waited behind other work judged the answers of the moment it was asked
    # for, and took one started meanwhile (its heartbeat not yet written) for an orphan.
    settings.STREAM_ORPHAN_SECONDS = 10
    started_meanwhile = await asyncio.to_thread(streaming_answer, conversation, age=60)
    process = runtime.Runtime()
    held = threading.Event()
    busy = asyncio.get_running_loop().run_in_executor(duty_executor(), held.wait)
    try:
        sweep = asyncio.create_task(process._sweep_round())
        # One turn of the loop is the point: in its first step the sweep's task reads its
        # arguments and hands the call to the held thread (where the old code took its list).
        await asyncio.sleep(0)
        process.answers[started_meanwhile.pk] = cast(Answer, None)
    finally:
        held.set()
    await busy
    await sweep

    await started_meanwhile.arefresh_from_db()
    assert started_meanwhile.status == "streaming"
    await process.http.aclose()


async def test_heartbeats_go_on_while_every_database_thread_is_busy(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    # Checkpoints run on a thread of their own: a burst of sockets' work that fills the
    # database threads must not hold a live answer's heartbeat back past the orphan age.
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    communicator = await connect(conversation.id, user)
    message_id = await answering(communicator, "beating sim:tokens=2000 sim:rate=50")
    held = threading.Event()
    loop = asyncio.get_running_loop()
    busy = [loop.run_in_executor(db_executor(), held.wait) for _ in range(settings.DB_THREADS)]
    try:
        before = (await Message.objects.aget(pk=message_id)).heartbeat_at
        assert before is not None

        async def beat() -> bool:
            now = (await Message.objects.aget(pk=message_id)).heartbeat_at
            return now is not None and now > before

        await until(beat, what="a heartbeat while every database thread is held")
    finally:
        held.set()
        await asyncio.gather(*busy)
    await communicator.send_json_to({"type": "stop"})
    await receive_until(communicator, "done")
    await communicator.disconnect()


async def test_sweep_announces_done_to_open_sockets(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    stale = await asyncio.to_thread(streaming_answer, conversation, age=60, content="lost")
    communicator = await connect(conversation.id, user)
    assert communicator.snapshot["active"]["message_id"] == str(stale.pk)
    runtime.current()  # the process starts: its runtime sweeps at once
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()

    done = frames[-1]
    assert done["message_id"] == str(stale.pk)
    assert done["status"] == "interrupted"
    assert done["message"]["content"] == "lost"


def test_orphan_threshold_must_fit_several_checkpoints(monkeypatch: Any) -> None:
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import chatsite.settings

    monkeypatch.setenv("STREAM_CHECKPOINT_SECONDS", "5")
    monkeypatch.setenv("STREAM_ORPHAN_SECONDS", "10")
    with pytest.raises(ImproperlyConfigured, match="STREAM_ORPHAN_SECONDS"):
        importlib.reload(chatsite.settings)
    monkeypatch.undo()
    importlib.reload(chatsite.settings)


async def test_shutdown_saves_running_answers_as_interrupted_with_all_their_text(
    connect: Connect, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("shut down sim:tokens=2000 sim:rate=100"))
    frames = await receive_until(communicator, "delta")

    await runtime.shutdown()

    frames += await receive_until(communicator, "done")
    await communicator.disconnect()
    done = frames[-1]
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    saved = await Message.objects.aget(pk=done["message_id"])
    assert (saved.status, saved.content) == ("interrupted", text)
    assert saved.error == INTERRUPTED_MESSAGE
    assert not runtime.current().answers


def test_retry_delay_honours_retry_after_up_to_the_cap(settings: Any) -> None:
    from streaming.exceptions import UpstreamHTTPError, UpstreamTimeout

    settings.OPENAI_RETRY_MAX_SECONDS = 20
    settings.OPENAI_MAX_RETRIES = 3

    def delay(exc: UpstreamError, attempt: int, *, got_text: bool = False) -> float | None:
        return retries.delay(exc, attempt, got_text=got_text)

    assert delay(UpstreamHTTPError(429, "slow", retry_after=7), 0) == 7
    assert delay(UpstreamHTTPError(429, "slow", retry_after=60), 0) is None
    assert delay(UpstreamHTTPError(400, "bad"), 0) is None
    assert delay(UpstreamTimeout("quiet"), 0) is None
    assert delay(UpstreamHTTPError(503, "down"), 3) is None
    delays = [delay(UpstreamHTTPError(503, "down"), n) or 0.0 for n in range(3)]
    assert 0.25 <= delays[0] <= 0.5 <= delays[1] <= 1.0 <= delays[2] <= 2.0
    # Never once text was received.
    assert delay(UpstreamHTTPError(503, "down"), 0, got_text=True) is None


def test_sweep_judges_a_row_without_heartbeat_by_its_last_update(
    conversation: Conversation, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    no_beat = Message.objects.create(
        conversation=conversation, role="assistant", status="streaming", content="hand-made"
    )
    assert len(do_sweep_orphans()) == 0  # just written: not stale yet

    Message.objects.filter(pk=no_beat.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert len(do_sweep_orphans()) == 1
    no_beat.refresh_from_db()
    assert (no_beat.status, no_beat.content) == ("interrupted", "hand-made")


# A trigger that deletes the answer "purged meanwhile" as soon as an update touches it, in
# each database's own dialect.
PURGE_ON_UPDATE = {
    "postgresql": """
        CREATE FUNCTION purge_swept() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM streaming_message WHERE id = NEW.id; RETURN NULL; END $$;
        CREATE TRIGGER purge_swept AFTER UPDATE ON streaming_message FOR EACH ROW
        WHEN (NEW.content = 'purged meanwhile') EXECUTE FUNCTION purge_swept();
    """,
    "sqlite": """
        CREATE TRIGGER purge_swept AFTER UPDATE ON streaming_message FOR EACH ROW
        WHEN NEW.content = 'purged meanwhile'
        BEGIN DELETE FROM streaming_message WHERE id = NEW.id; END;
    """,
}
DROP_PURGE_ON_UPDATE = {
    "postgresql": "DROP TRIGGER purge_swept ON streaming_message; DROP FUNCTION purge_swept();",
    "sqlite": "DROP TRIGGER purge_swept;",
}


def test_sweep_skips_an_answer_purged_between_its_update_and_read(
    conversation: Conversation, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    purged = streaming_answer(conversation, age=60, content="purged meanwhile")
    other = Conversation.objects.create(owner=conversation.owner)
    kept = streaming_answer(other, age=60, content="kept")
    # The purge of deleted conversations runs on other processes at any moment: here it
    # deletes one row right after the sweep marks it, before the sweep reads it back.
    with connection.cursor() as cursor:
        cursor.execute(PURGE_ON_UPDATE[connection.vendor])
    try:
        swept = do_sweep_orphans()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(DROP_PURGE_ON_UPDATE[connection.vendor])

    assert [message.pk for message in swept] == [kept.pk]
    kept.refresh_from_db()
    assert kept.status == "interrupted"
    assert not Message.objects.filter(pk=purged.pk).exists()


async def test_one_failed_announcement_of_swept_answers_does_not_skip_the_rest(
    connect: Connect, user: User, settings: Any, monkeypatch: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    conversations = [await Conversation.objects.acreate(owner=user) for _ in range(2)]
    for each in conversations:
        await asyncio.to_thread(streaming_answer, each, age=60, content=f"of {each.pk}")
    communicators = {each.pk: await connect(each.id, user) for each in conversations}
    real_send = layer.send
    failing: list[layer.Outgoing] = []

    async def failing_for_the_first(outgoing: layer.Outgoing) -> bool:
        # Whichever conversation's `done` goes first fails: the other must still go.
        if not failing and outgoing.message["type"] == "chat.done":
            failing.append(outgoing)
        if failing and outgoing.group == failing[0].group:
            raise ConnectionError("the layer dropped this one")
        return await real_send(outgoing)

    monkeypatch.setattr(layer, "send", failing_for_the_first)
    swept = await to_async(do_sweep_orphans)()
    assert len(swept) == 2
    assert len(failing) == 1
    (other,) = [m for m in swept if failing[0].group != group_name(m.conversation_id)]
    heard = await receive_until(communicators[other.conversation_id], "done")
    for each in communicators.values():
        await each.disconnect()

    assert heard[-1]["message_id"] == str(other.pk)
    assert heard[-1]["message"]["content"] == f"of {other.conversation_id}"
    assert heard[-1]["status"] == "interrupted"
