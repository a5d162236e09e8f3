"""Redis going away and coming back under a running daphne process.

The answer must still be saved, users must be told plainly, the server must not crash or
spin, and everything must work again once Redis is back.
"""

import asyncio
import uuid
from collections.abc import Callable

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from streaming.models import Conversation, Message
from tests.support.live import LiveClient, refused_connection
from tests.support.servers import DaphneServer, RedisServer
from tests.support.users import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def test_redis_outage_loses_no_answer_and_recovers(
    live_servers: Callable[..., list[DaphneServer]],
    own_redis: RedisServer,
    conversation: Conversation,
    user: User,
) -> None:
    (server,) = live_servers(1, redis_url=own_redis.url)
    cookie = await sync_to_async(session_cookie)(user)

    async with LiveClient(server, conversation.id, cookie) as client:
        await client.send(
            {
                "type": "user_message",
                "content": "outage sim:tokens=150 sim:rate=50",
                "client_id": str(uuid.uuid4()),
            }
        )
        start = await client.receive_until("start")
        await client.receive_until("delta")
        await sync_to_async(own_redis.kill)()
        # The socket finds out (its receive fails, or the pong that travels through the
        # layer cannot be sent) and is closed with 4503: the page will reconnect.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.receive_until("no such frame", timeout=30)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4503
    assert client.frames[-1]["code"] == "unavailable"

    frame, code = await refused_connection(server, conversation.id, cookie)
    assert frame == {
        "type": "error",
        "code": "unavailable",
        "message": "Live updates are unavailable right now. Retrying shortly…",
    }
    assert code == 4503

    # The answer is generated and saved all the same.
    message_id = start["message_id"]
    for _ in range(300):
        saved = await Message.objects.aget(pk=message_id)
        if saved.status != "streaming":
            break
        await asyncio.sleep(0.1)
    assert saved.status == "complete"
    assert saved.completion_tokens == 150
    assert server.process.poll() is None  # no crash
    assert "Channel layer" in server.log()

    await sync_to_async(own_redis.start)()
    # As the page does: reconnect with backoff until the server is whole again.
    for attempt in range(20):
        try:
            client = await LiveClient(server, conversation.id, cookie).__aenter__()
            break
        except AssertionError:  # an `unavailable` frame instead of the snapshot
            await asyncio.sleep(0.25 * (attempt + 1))
    else:
        pytest.fail("the server did not recover after Redis came back")
    async with client:
        snapshot = client.snapshot
        assert snapshot["active"] is None
        assert snapshot["messages"][-1]["content"] == saved.content
        await client.send(
            {"type": "user_message", "content": "back sim:tokens=5", "client_id": str(uuid.uuid4())}
        )
        done = await client.receive_until("done")
    assert done["status"] == "complete"
