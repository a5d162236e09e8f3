"""Checkpoints, the orphan sweep and shutdown: nothing is lost when a process dies."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from streaming import generation, services
from streaming.models import Conversation, Message
from tests.conftest import receive_until, user_message

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


async def test_checkpoints_save_text_and_seq_while_streaming_but_not_per_chunk(
    connect: Connect, conversation: Conversation, user: User, settings: Any, monkeypatch: Any
) -> None:
    settings.STREAM_CHECKPOINT_SECONDS = 0.2
    calls: list[tuple[str, int]] = []
    real_checkpoint = services.do_checkpoint

    def counting_checkpoint(message_id: uuid.UUID, content: str, seq: int) -> bool:
        calls.append((content, seq))
        return real_checkpoint(message_id, content, seq)

    monkeypatch.setattr(services, "do_checkpoint", counting_checkpoint)
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("checkpoint me sim:tokens=120 sim:rate=100"))
    frames = await receive_until(communicator, "delta")
    await asyncio.sleep(0.6)
    message_id = frames[-1]["message_id"]
    during = await Message.objects.aget(pk=message_id)
    frames += await receive_until(communicator, "done")
    await communicator.disconnect()

    assert during.status == "streaming"
    assert during.seq > 0
    assert during.content
    assert during.heartbeat_at is not None
    deltas = [f for f in frames if f["type"] == "delta"]
    # The text saved at a checkpoint is exactly the deltas up to its seq.
    for content, seq in calls:
        assert content == "".join(d["text"] for d in deltas[:seq])
    # About one per 0.2 s over a ~1.2 s answer: far fewer than its 120 chunks.
    assert 2 <= len(calls) < 30


def test_sweep_marks_stale_answers_interrupted_and_keeps_their_text(
    conversation: Conversation, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    stale = streaming_answer(conversation, age=60, content="half an ans")
    other = Conversation.objects.create(owner=conversation.owner)
    fresh = streaming_answer(other, age=1, content="still going")

    assert services.do_sweep_orphans() == 1

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.content) == ("interrupted", "half an ans")
    assert stale.error == services.INTERRUPTED_MESSAGE
    assert stale.heartbeat_at is None
    assert (fresh.status, fresh.content) == ("streaming", "still going")
    assert services.do_sweep_orphans() == 0


def test_sweep_spares_answers_this_process_is_generating(
    conversation: Conversation, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    stale = streaming_answer(conversation, age=60)

    assert services.do_sweep_orphans(alive=[stale.pk]) == 0
    stale.refresh_from_db()
    assert stale.status == "streaming"


async def test_sweep_announces_done_to_open_sockets(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    stale = await asyncio.to_thread(streaming_answer, conversation, age=60, content="lost")
    communicator = await connect(conversation.id, user)
    # The socket's connect ran a sweep already; whichever sweep won, one done arrives.
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

    await generation.stop_all()

    frames += await receive_until(communicator, "done")
    await communicator.disconnect()
    done = frames[-1]
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    saved = await Message.objects.aget(pk=done["message_id"])
    assert (saved.status, saved.content) == ("interrupted", text)
    assert saved.error == services.INTERRUPTED_MESSAGE
    assert not generation.registry


def test_retry_delay_honours_retry_after_up_to_the_cap(settings: Any) -> None:
    from streaming.exceptions import UpstreamHTTPError, UpstreamTimeout

    settings.OPENAI_RETRY_MAX_SECONDS = 20
    settings.OPENAI_MAX_RETRIES = 3
    gen = generation.Generation.__new__(generation.Generation)
    gen.deltas, gen.pending = [], []

    assert gen._retry_delay(UpstreamHTTPError(429, "slow", retry_after=7), 0) == 7
    assert gen._retry_delay(UpstreamHTTPError(429, "slow", retry_after=60), 0) is None
    assert gen._retry_delay(UpstreamHTTPError(400, "bad"), 0) is None
    assert gen._retry_delay(UpstreamTimeout("quiet"), 0) is None
    assert gen._retry_delay(UpstreamHTTPError(503, "down"), 3) is None
    delays = [gen._retry_delay(UpstreamHTTPError(503, "down"), n) for n in range(3)]
    assert all(d is not None for d in delays)
    assert 0.25 <= delays[0] <= 0.5 <= delays[1] <= 1.0 <= delays[2] <= 2.0  # type: ignore[operator]
    gen.deltas = ["text already sent"]
    assert gen._retry_delay(UpstreamHTTPError(503, "down"), 0) is None


def test_sweep_judges_a_row_without_heartbeat_by_its_last_update(
    conversation: Conversation, settings: Any
) -> None:
    settings.STREAM_ORPHAN_SECONDS = 10
    no_beat = Message.objects.create(
        conversation=conversation, role="assistant", status="streaming", content="hand-made"
    )
    assert services.do_sweep_orphans() == 0  # just written: not stale yet

    Message.objects.filter(pk=no_beat.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert services.do_sweep_orphans() == 1
    no_beat.refresh_from_db()
    assert (no_beat.status, no_beat.content) == ("interrupted", "hand-made")
