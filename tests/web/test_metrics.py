"""/metrics of a real daphne process moving by the right amounts as its answers stream,
fail, are retried and are stopped, as it writes checkpoints and sweeps orphans, and as its
channel layer fails."""

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone

from streaming.models import Conversation, Message
from streaming.text import estimate_tokens
from tests.support.frames import user_message
from tests.support.live import LiveClient, refused_connection
from tests.support.metrics import moved, scrape, value
from tests.support.servers import FAST_CHECKPOINTS, DaphneServer, RedisServer
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)


async def gauge_becomes(server: DaphneServer, name: str, wanted: float) -> None:
    async def check() -> bool:
        return value(await scrape(server), name) == wanted

    await until(check, what=f"{name} reaching {wanted}")


async def answer(client: LiveClient, content: str) -> Message:
    """Send ``content``, wait for its answer's end, and return the answer as saved."""
    await client.send(user_message(content))
    done = await client.receive_until("done")
    return await Message.objects.aget(pk=done["message_id"])


async def test_counters_follow_answers_that_complete_fail_retry_and_stop(
    live_servers: Callable[..., list[DaphneServer]], conversation: Conversation, cookie: str
) -> None:
    (server,) = live_servers(1)
    before = await scrape(server)
    assert value(before, "chatsite_websocket_connections") == 0
    assert value(before, "chatsite_answers_streaming") == 0
    unique = uuid.uuid4().hex  # the simulator counts `times` per distinct message

    async with LiveClient(server, conversation.id, cookie) as client:
        await gauge_becomes(server, "chatsite_websocket_connections", 1)
        complete = await answer(client, "one sim:tokens=20 sim:rate=0")
        retried = await answer(client, f"two {unique} sim:status=503 sim:times=1 sim:tokens=10")
        refused = await answer(client, "three sim:status=401")
        broken = await answer(client, "four sim:fault=error sim:after=3 sim:rate=0")

        await client.send(user_message("five sim:tokens=5000 sim:rate=50"))
        await client.receive_until("delta")
        await gauge_becomes(server, "chatsite_answers_streaming", 1)
        await client.send({"type": "stop"})
        done = await client.receive_until("done")
        stopped = await Message.objects.aget(pk=done["message_id"])
        await gauge_becomes(server, "chatsite_answers_streaming", 0)
    await gauge_becomes(server, "chatsite_websocket_connections", 0)
    after = await scrape(server)

    assert [complete.status, retried.status, refused.status, broken.status, stopped.status] == [
        "complete",
        "complete",
        "error",
        "error",
        "cancelled",
    ]
    finished = "chatsite_answers_finished_total"
    assert moved(before, after, finished, status="complete") == 2
    assert moved(before, after, finished, status="error") == 2
    assert moved(before, after, finished, status="cancelled") == 1
    assert moved(before, after, finished, status="interrupted") == 0

    errors = "chatsite_upstream_errors_total"
    assert moved(before, after, errors, kind="http", status="503") == 1
    assert moved(before, after, errors, kind="http", status="401") == 1
    assert moved(before, after, errors, kind="stream", status="none") == 1
    upstream_errors = sum(v for (name, _), v in after.items() if name == errors)
    assert upstream_errors - sum(v for (name, _), v in before.items() if name == errors) == 3
    assert moved(before, after, "chatsite_upstream_retries_total", reason="503") == 1
    retries = sum(v for (n, _), v in after.items() if n == "chatsite_upstream_retries_total")
    assert retries == 1  # the 401 and the broken stream were not retried

    # Four answers had text (the refused one had none); five ended.
    ttft = "chatsite_upstream_time_to_first_token_seconds_count"
    assert moved(before, after, ttft) == 4
    assert moved(before, after, "chatsite_answer_duration_seconds_count") == 5

    # The provider's counts where it sent them; the estimate of the text where it did not.
    assert complete.completion_tokens == 20
    assert retried.completion_tokens == 10
    assert stopped.completion_tokens is None
    assert broken.completion_tokens is None
    assert refused.content == ""
    relayed = 20 + 10 + estimate_tokens(stopped.content) + estimate_tokens(broken.content)
    assert moved(before, after, "chatsite_tokens_relayed_total") == relayed

    assert moved(before, after, "chatsite_sweep_interrupted_total") == 0
    assert moved(before, after, "chatsite_channel_layer_send_failures_total") == 0


async def test_checkpoint_writes_and_swept_orphans_are_counted(
    live_servers: Callable[..., list[DaphneServer]],
    user: User,
    conversation: Conversation,
    cookie: str,
) -> None:
    long_ago = timezone.now() - timedelta(hours=1)
    other = await Conversation.objects.acreate(owner=user)
    orphans = [
        await Message.objects.acreate(
            conversation=other if n else conversation,
            role="assistant",
            status="streaming",
            content="half an answer",
            heartbeat_at=long_ago,
            created_at=long_ago,
        )
        for n in range(2)
    ]
    (server,) = live_servers(1, **FAST_CHECKPOINTS)
    await until(
        lambda: Message.objects.filter(
            pk__in=[o.pk for o in orphans], status="interrupted"
        ).acount(),
        what="the sweep",
    )

    async def swept_both() -> bool:
        return value(await scrape(server), "chatsite_sweep_interrupted_total") == 2

    await until(swept_both, what="the sweep's count")
    before = await scrape(server)
    assert value(before, "chatsite_checkpoint_write_seconds_count") == 0  # nothing ran yet

    async with LiveClient(server, conversation.id, cookie) as client:
        await client.send(user_message("long sim:tokens=5000 sim:rate=50"))
        await client.receive_until("delta")

        async def checkpointed() -> bool:
            samples = await scrape(server)
            return value(samples, "chatsite_checkpoint_write_seconds_count") >= 2

        await until(checkpointed, what="checkpoints written and timed")
        await client.send({"type": "stop"})
        await client.receive_until("done")
    after = await scrape(server)
    assert value(after, "chatsite_checkpoint_write_seconds_sum") > 0
    assert value(after, "chatsite_sweep_interrupted_total") == 2  # the live answer was not swept


async def test_channel_layer_send_failures_are_counted(
    live_servers: Callable[..., list[DaphneServer]],
    own_redis: RedisServer,
    conversation: Conversation,
    cookie: str,
) -> None:
    (server,) = live_servers(1, redis_url=own_redis.url)
    assert value(await scrape(server), "chatsite_channel_layer_send_failures_total") == 0
    async with LiveClient(server, conversation.id, cookie) as client:
        await client.send(user_message("outage sim:tokens=150 sim:rate=50"))
        start = await client.receive_until("start")
        await client.receive_until("delta")
        await sync_to_async(own_redis.kill)()

        async def failures_counted() -> bool:
            samples = await scrape(server)
            return value(samples, "chatsite_channel_layer_send_failures_total") > 0

        await until(failures_counted, what="failed sends counted", timeout=30)

    # The answer goes on without the layer, and its ending is counted all the same.
    async def ended() -> bool:
        samples = await scrape(server)
        return value(samples, "chatsite_answers_finished_total", status="complete") == 1

    await until(ended, what="the answer's ending counted", timeout=30)
    saved = await Message.objects.aget(pk=start["message_id"])
    assert saved.status == "complete"
    assert value(await scrape(server), "chatsite_answers_streaming") == 0


async def closed_with(server: DaphneServer, conversation_id: object, cookie: str) -> int | None:
    """Open a socket the server must close before it sends anything: the close code."""
    async with websockets.connect(
        f"{server.ws_url}/ws/conversations/{conversation_id}/",
        origin=websockets.Origin(server.url),
        additional_headers={"Cookie": f"sessionid={cookie}"},
        proxy=None,
    ) as socket:
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()
        return socket.close_code


async def test_refused_sockets_leave_no_connection_counted(
    live_servers: Callable[..., list[DaphneServer]],
    own_redis: RedisServer,
    conversation: Conversation,
    other_user: User,
    cookie: str,
) -> None:
    (server,) = live_servers(1, redis_url=own_redis.url, LIMIT_SOCKETS_PER_USER="1")
    theirs = await Conversation.objects.acreate(owner=other_user)
    connections = "chatsite_websocket_connections"

    assert await closed_with(server, conversation.id, "not-a-session") == 4401
    await gauge_becomes(server, connections, 0)
    assert await closed_with(server, theirs.id, cookie) == 4403
    await gauge_becomes(server, connections, 0)

    async with LiveClient(server, conversation.id, cookie):
        await gauge_becomes(server, connections, 1)
        frame, code = await refused_connection(server, conversation.id, cookie)
        assert (frame["code"], code) == ("rate_limited", 4429)
        await gauge_becomes(server, connections, 1)  # the open one only
    await gauge_becomes(server, connections, 0)

    await sync_to_async(own_redis.kill)()
    frame, code = await refused_connection(server, conversation.id, cookie)
    assert (frame["code"], code) == ("unavailable", 4503)
    await gauge_becomes(server, connections, 0)
    assert value(await scrape(server), connections) == 0
