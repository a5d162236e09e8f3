"""channels-redis on a real Redis, configured as chatsite configures it.

redis-py 8 gives sockets a 5 s read timeout by default, which kills channels-redis's
blocking receive on every idle socket (channels_redis issue #422). These tests hold a
receive idle for longer than that, on both layers chatsite can use.
"""

import asyncio
import uuid
from typing import Any

import pytest
import redis.exceptions
from channels_redis.core import RedisChannelLayer
from django.contrib.auth.models import User
from django.utils.module_loading import import_string

from chatsite.channel_layers import redis_layer
from streaming.models import Conversation
from tests.support.frames import receive_until

IDLE_SECONDS = 6.5  # longer than redis-py 8's default 5 s socket timeout


def make_layer(redis_url: str, kind: str, **config: Any) -> Any:
    settings = redis_layer([redis_url], kind, **config)
    return import_string(str(settings["BACKEND"]))(**settings["CONFIG"])  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["pubsub", "core"])
async def test_idle_receive_outlives_redis_py_default_timeout(redis_url: str, kind: str) -> None:
    layer = make_layer(redis_url, kind, prefix=f"test-{uuid.uuid4().hex[:8]}")
    channel = await layer.new_channel()
    receive = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(IDLE_SECONDS)
    assert not receive.done(), receive.exception() if receive.done() else None

    await layer.send(channel, {"type": "after.idle"})
    assert (await asyncio.wait_for(receive, 5))["type"] == "after.idle"
    await layer.flush()


async def test_plain_url_host_hits_the_redis_py_timeout(redis_url: str) -> None:
    """The trap itself, so the test above is known to be able to fail."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=f"test-{uuid.uuid4().hex[:8]}")
    channel = await layer.new_channel()
    with pytest.raises(redis.exceptions.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), IDLE_SECONDS)
    await layer.flush()


@pytest.mark.django_db(transaction=True)
async def test_idle_socket_still_streams_after_redis_py_default_timeout(
    redis_layer: str, connect: Any, conversation: Conversation, user: User
) -> None:
    communicator = await connect(conversation.id, user)
    await asyncio.sleep(IDLE_SECONDS)
    client_id = str(uuid.uuid4())
    await communicator.send_json_to(
        {"type": "user_message", "content": "still there? sim:tokens=5", "client_id": client_id}
    )
    frames = await receive_until(communicator, "done")
    await communicator.disconnect()
    assert frames[-1]["status"] == "complete"
