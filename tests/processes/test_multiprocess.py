"""Several real daphne processes sharing Redis and the database, with real WebSocket clients.

This is the grown-up deployment minus nginx: any socket may sit on any process, and an
answer generated on one must look the same from every other.
"""

import asyncio
import os
import random
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone
from django.utils.module_loading import import_string

from chatsite.channel_layers import redis_layer as redis_layer_settings
from chatsite.settings import CHANNEL_LAYER
from streaming.control import user_group_name
from streaming.models import Conversation, Message, group_name
from streaming.simulator import SimulatorThread
from tests.support.frames import SLOW_TO_START, user_message
from tests.support.live import LiveClient
from tests.support.servers import FAST_CHECKPOINTS, DaphneServer
from tests.support.services import LAYER_PREFIX_VARIABLE
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster(live_servers: Callable[..., list[DaphneServer]], redis_url: str) -> list[DaphneServer]:
    """Two daphne processes on one Redis and one database.

    One user's sockets stand for many people's tabs here, so their limit is lifted.
    """
    return live_servers(2, redis_url=redis_url, LIMIT_SOCKETS_PER_USER="100", **FAST_CHECKPOINTS)


async def test_answer_started_on_one_process_is_live_on_the_other(
    cluster: list[DaphneServer], conversation: Conversation, cookie: str
) -> None:
    a, b = cluster
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        await on_a.send(user_message("hello from A sim:tokens=40 sim:rate=100"))
        seen_message = await on_b.receive_until("message")
        done_b = await on_b.receive_until("done")
        done_a = await on_a.receive_until("done")

    message_id = done_a["message_id"]
    saved = await Message.objects.aget(pk=message_id)
    assert seen_message["message"]["content"] == "hello from A sim:tokens=40 sim:rate=100"
    assert [f["type"] for f in on_b.frames].count("delta") >= 2  # live, not only at the end
    assert done_b["status"] == done_a["status"] == saved.status == "complete"
    assert on_a.text_of(message_id) == on_b.text_of(message_id) == saved.content


async def test_stop_sent_on_the_other_process_ends_the_answer(
    cluster: list[DaphneServer], conversation: Conversation, cookie: str
) -> None:
    a, b = cluster
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        await on_a.send(user_message("endless sim:tokens=5000 sim:rate=40"))
        await on_b.receive_until("delta")
        await on_b.send({"type": "stop"})
        done_b = await on_b.receive_until("done", timeout=5)
        done_a = await on_a.receive_until("done", timeout=5)

    message_id = done_a["message_id"]
    saved = await Message.objects.aget(pk=message_id)
    assert done_a["status"] == done_b["status"] == saved.status == "cancelled"
    assert saved.content == on_a.text_of(message_id) == done_a["message"]["content"]
    assert 0 < len(saved.content.split()) < 5000


async def test_stop_on_one_process_before_the_message_reaches_the_other_is_kept_for_it(
    cluster: list[DaphneServer],
    conversation: Conversation,
    cookie: str,
    simulator: SimulatorThread,
) -> None:
    a, b = cluster
    marker, client_id = f"m{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        await on_b.send({"type": "stop", "client_id": client_id})
        await on_b.ping()  # handled after the stop (one socket's frames go in order)
        await on_b.receive_until("pong")
        await on_a.send(user_message(f"{marker} sim:tokens=50", client_id))
        done_a = await on_a.receive_until("done")
        done_b = await on_b.receive_until("done")

    saved = await Message.objects.aget(pk=done_a["message_id"])
    assert done_a["status"] == done_b["status"] == saved.status == "cancelled"
    assert done_a["message"]["content"] == saved.content == ""
    assert [f for f in on_a.frames + on_b.frames if f["type"] == "delta"] == []
    assert [r for r in simulator.requests if marker in str(r["messages"])] == []


async def test_stop_by_client_id_on_the_other_process_ends_the_answer_before_its_first_piece(
    cluster: list[DaphneServer], conversation: Conversation, cookie: str
) -> None:
    a, b = cluster
    client_id = str(uuid.uuid4())
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        await on_a.send(user_message(f"slow to start {SLOW_TO_START}", client_id))
        await on_b.receive_until("start")  # it exists, and runs on A
        await on_b.send({"type": "stop", "client_id": client_id})
        done_b = await on_b.receive_until("done")
        done_a = await on_a.receive_until("done")

    saved = await Message.objects.aget(pk=done_a["message_id"])
    assert done_a["status"] == done_b["status"] == saved.status == "cancelled"
    assert (saved.content, saved.seq) == ("", 0)
    assert [f for f in on_a.frames + on_b.frames if f["type"] == "delta"] == []


async def test_sockets_joining_at_random_moments_on_either_process_get_the_exact_text(
    cluster: list[DaphneServer], conversation: Conversation, cookie: str
) -> None:
    rng = random.Random(2024)

    mid_stream = 0

    async def join(delay: float, server: DaphneServer) -> tuple[str, str, str, int]:
        """The answer's id, its text as the page shows it, as the frames assembled it, and
        how many frames disagreed with the rest."""
        nonlocal mid_stream
        await asyncio.sleep(delay)
        async with LiveClient(server, conversation.id, cookie) as client:
            active = client.snapshot["active"]
            if active is None:  # joined after the end: the stored message is the answer
                last = client.snapshot["messages"][-1]
                return last["id"], last["content"], last["content"], 0
            mid_stream += 1
            done = await client.receive_until("done")
            answer_id = done["message_id"]
            return (
                answer_id,
                client.shown_text(answer_id),
                client.text_of(answer_id),
                client.assembler.mismatches,
            )

    async with LiveClient(cluster[0], conversation.id, cookie) as sender:
        await sender.send(user_message("joins sim:tokens=300 sim:rate=150"))
        await sender.receive_until("start")
        joins = [join(rng.uniform(0, 2.2), rng.choice(cluster)) for _ in range(24)]
        results = await asyncio.gather(*joins)
        await sender.receive_until("done")

    saved = await Message.objects.aget(pk=results[0][0])
    assert saved.status == "complete"
    assert {message_id for message_id, *_ in results} == {str(saved.pk)}
    # Every page shows the exact text, and no frame of any joiner disagreed with another.
    assert [shown for _, shown, _, _ in results] == [saved.content] * len(results)
    assert sum(mismatches for *_, mismatches in results) == 0
    # What the frames assembled is the text, or, for a joiner whose sync request reached the
    # answer only after it had sent everything (it replies no more then: docs/protocol.md),
    # the text up to where that joiner's pieces stopped, which its `done` completes.
    assert all(saved.content.startswith(assembled) for _, _, assembled, _ in results)
    whole = sum(assembled == saved.content for _, _, assembled, _ in results)
    assert whole >= len(results) // 2  # most assembled it all, piece by piece
    assert mid_stream >= len(results) // 2  # most joins really happened mid-answer


async def test_one_answer_at_a_time_and_resends_hold_across_processes(
    cluster: list[DaphneServer],
    conversation: Conversation,
    cookie: str,
    simulator: SimulatorThread,
) -> None:
    a, b = cluster
    content = f"only once {uuid.uuid4()} sim:tokens=60 sim:rate=60"
    client_id = str(uuid.uuid4())
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        await on_a.send(user_message(content, client_id))
        await on_b.receive_until("start")
        await on_b.send(user_message("me too"))
        busy = await on_b.receive_until("error")
        await on_b.send(user_message(content, client_id))  # a resend after a reconnect
        echo = await on_b.receive_until("message")
        await on_a.receive_until("done")

    assert busy["code"] == "busy"
    assert echo["message"]["client_id"] == client_id
    roles = [m.role async for m in conversation.messages.order_by("created_at")]
    assert roles == ["user", "assistant"]
    assert [r["messages"][-1]["content"] for r in simulator.requests].count(content) == 1


async def test_kill_9_mid_answer_leaves_it_interrupted_with_its_checkpoint(
    cluster: list[DaphneServer], conversation: Conversation, cookie: str
) -> None:
    a, b = cluster
    async with LiveClient(b, conversation.id, cookie) as watcher:
        async with LiveClient(a, conversation.id, cookie) as sender:
            await sender.send(user_message("doomed sim:tokens=5000 sim:rate=50"))
            start = await watcher.receive_until("start")
            await watcher.receive_until("delta")
            # Some text checkpointed, so there is something to keep.
            saved_text = Message.objects.filter(pk=start["message_id"], seq__gt=0)
            await until(saved_text.aexists)
            await sync_to_async(a.kill)()
        # No process will finish it: the sweep on B must notice, within a few seconds.
        done = await watcher.receive_until("done", timeout=15)

    message_id = start["message_id"]
    saved = await Message.objects.aget(pk=message_id)
    assert done["status"] == saved.status == "interrupted"
    assert saved.content
    assert saved.seq > 0
    assert watcher.text_of(message_id).startswith(saved.content)
    assert saved.error


async def test_sigterm_mid_answer_saves_all_its_text_as_interrupted(
    cluster: list[DaphneServer], conversation: Conversation, cookie: str
) -> None:
    a, b = cluster
    async with LiveClient(b, conversation.id, cookie) as watcher:
        async with LiveClient(a, conversation.id, cookie) as sender:
            await sender.send(user_message("graceful sim:tokens=5000 sim:rate=50"))
            await watcher.receive_until("delta")
            await watcher.receive_until("delta")  # mid-answer, with text past the first piece
            await sync_to_async(a.stop)()
        done = await watcher.receive_until("done", timeout=10)

    saved = await Message.objects.aget(pk=done["message_id"])
    assert done["status"] == saved.status == "interrupted"
    assert saved.content == watcher.text_of(done["message_id"]) == done["message"]["content"]
    assert "Shutting down: saving 1 running answer" in a.log()


async def test_a_process_sweeps_orphans_from_its_start_without_any_socket(
    live_servers: Callable[..., list[DaphneServer]], conversation: Conversation
) -> None:
    # Left streaming by a process that died long ago; no page is open anywhere.
    long_ago = timezone.now() - timedelta(hours=1)
    orphan = await Message.objects.acreate(
        conversation=conversation,
        role="assistant",
        status="streaming",
        content="half an answer",
        heartbeat_at=long_ago,
        created_at=long_ago,
    )

    (server,) = live_servers(1)

    await until(
        lambda: Message.objects.filter(pk=orphan.pk, status="interrupted").aexists(),
        what="the new process sweeping the orphan",
    )
    assert "Answer runtime started" in server.log()
    assert "the model API over aiohttp" in server.log()  # OPENAI_HTTP's default
    assert "GET" not in server.log()  # no page asked for anything
    assert "WSCONNECT" not in server.log()
    saved = await Message.objects.aget(pk=orphan.pk)
    assert saved.content == "half an answer"


# Enough that the SIGTERM lands while the sweep's round announces them: it marks them in
# one statement, then sends a `done` and a list change for each.
ORPHANS = 150


async def test_sigterm_while_the_sweep_announces_orphans_exits_at_once(
    live_servers: Callable[..., list[DaphneServer]], redis_url: str, user: User
) -> None:
    # Many orphans, each in its own conversation: the first sweep announces each end and
    # each list change. Announced from a database thread, that thread waited for the loop
    # the SIGTERM stopped, and the process never exited.
    long_ago = timezone.now() - timedelta(hours=1)
    conversations = await Conversation.objects.abulk_create(
        [Conversation(owner=user) for _ in range(ORPHANS)]
    )
    await Message.objects.abulk_create(
        [
            Message(
                conversation=c,
                role="assistant",
                status="streaming",
                content="half an answer",
                heartbeat_at=long_ago,
                created_at=long_ago,
            )
            for c in conversations
        ]
    )
    # Listening as every tab of these conversations and every list of the user would: a
    # round cut by the shutdown once marked its rows and never told anyone they ended.
    layer = layer_of(redis_url)
    channel = await layer.new_channel()
    await layer.group_add(user_group_name(user.pk), channel)
    for c in conversations:
        await layer.group_add(group_name(c.id), channel)
    heard: list[dict[str, Any]] = []
    listening = asyncio.create_task(_collect(layer, channel, heard))
    try:
        (server,) = live_servers(1, redis_url=redis_url)
        swept = Message.objects.filter(status="interrupted")
        await until(swept.aexists, what="the sweep under way")

        await sync_to_async(server.stop)()  # SIGTERM; a kill after 10 s

        everyone = {str(c.id) for c in conversations}

        def all_listed() -> bool:
            return {e["conversation"]["id"] for e in heard if "conversation" in e} == everyone

        await until(all_listed, what="every list told")
    finally:
        listening.cancel()
        await layer.flush()

    assert server.process.returncode == 0
    assert f"Marked {ORPHANS} orphaned answer(s) interrupted" in server.log()
    assert await swept.acount() == ORPHANS
    assert not await swept.exclude(content="half an answer").aexists()
    done = [e for e in heard if e["type"] == "chat.done"]
    ended = {str(pk) async for pk in swept.values_list("pk", flat=True)}
    assert {e["message_id"] for e in done} == ended
    assert {e["status"] for e in done} == {"interrupted"}
    assert len(done) == ORPHANS  # each announced once


def layer_of(redis_url: str) -> Any:
    """A channel layer on ``redis_url`` as the servers configure theirs (same kind and prefix)."""
    prefix = os.environ[LAYER_PREFIX_VARIABLE]
    config = redis_layer_settings([redis_url], CHANNEL_LAYER, prefix=prefix)
    options = cast(dict[str, Any], config["CONFIG"])
    return import_string(str(config["BACKEND"]))(**options)


async def _collect(layer: Any, channel: str, into: list[dict[str, Any]]) -> None:
    while True:
        into.append(await layer.receive(channel))
