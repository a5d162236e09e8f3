"""Local delivery across real daphne processes (chatsite/pubsub.py, streaming/answer.py).

An answer's pieces go straight to its own process's sockets only while no other process
has a socket on the conversation; the moment one opens elsewhere, they go through Redis,
and every socket ends with the saved text. Which way each piece went is read from the
answering process's /metrics (``chatsite_answer_pieces_total{way}``); the faults of
test_faults_multiprocess.py run on both ways.
"""

from collections.abc import Callable

import pytest

from streaming.models import Conversation, Message
from tests.support.frames import user_message
from tests.support.live import LiveClient, frames_of
from tests.support.metrics import Samples, moved, scrape
from tests.support.servers import FAST_CHECKPOINTS, DaphneServer
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

PIECES = "chatsite_answer_pieces_total"

Cluster = Callable[..., list[DaphneServer]]


@pytest.fixture
def cluster(live_servers: Cluster, redis_url: str) -> Cluster:
    def _start(**extra: str) -> list[DaphneServer]:
        local = {"STREAM_LOCAL_DELIVERY": "true", **extra}  # off unless turned on
        return live_servers(2, redis_url=redis_url, **FAST_CHECKPOINTS, **local)

    return _start


def ways(before: Samples, after: Samples) -> tuple[float, float]:
    """Pieces sent between the two scrapes: (straight to the process's sockets, via Redis)."""
    return moved(before, after, PIECES, way="here"), moved(before, after, PIECES, way="redis")


@pytest.mark.parametrize("local", ["true", "false"])
async def test_a_conversation_open_on_one_process_only_gets_its_pieces_straight(
    cluster: Cluster, conversation: Conversation, cookie: str, local: str
) -> None:
    a, _ = cluster(STREAM_LOCAL_DELIVERY=local)
    before = await scrape(a)
    async with LiveClient(a, conversation.id, cookie) as client:
        await client.send(user_message("alone sim:tokens=80 sim:rate=200"))
        done = await client.receive_until("done")
    here, redis = ways(before, await scrape(a))

    saved = await Message.objects.aget(pk=done["message_id"])
    assert saved.status == "complete"
    assert client.text_of(done["message_id"]) == saved.content
    deltas = len(frames_of(client, "delta"))
    assert deltas > 1
    # Every piece one way: straight when allowed, through Redis when turned off.
    assert (here, redis) == ((deltas, 0) if local == "true" else (0, deltas))


async def test_sockets_on_two_processes_from_the_start_get_every_piece_through_redis(
    cluster: Cluster, conversation: Conversation, cookie: str
) -> None:
    a, b = cluster()
    before = await scrape(a)
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        await on_a.send(user_message("both sim:tokens=80 sim:rate=200"))
        done = await on_a.receive_until("done")
        await on_b.receive_until("done")
    here, redis = ways(before, await scrape(a))

    saved = await Message.objects.aget(pk=done["message_id"])
    assert on_a.text_of(str(saved.pk)) == saved.content
    assert on_b.text_of(str(saved.pk)) == saved.content
    assert here == 0
    assert redis == len(frames_of(on_a, "delta")) > 1


async def test_a_socket_opening_on_another_process_mid_answer_turns_it_to_redis(
    cluster: Cluster, conversation: Conversation, cookie: str
) -> None:
    a, b = cluster()
    before = await scrape(a)
    async with LiveClient(a, conversation.id, cookie) as on_a:
        await on_a.send(user_message("joined sim:tokens=400 sim:rate=100"))
        start = await on_a.receive_until("start")
        message_id = start["message_id"]

        async def straight() -> bool:
            return ways(before, await scrape(a))[0] >= 5

        await until(straight, what="pieces going straight to A's socket")
        async with LiveClient(b, conversation.id, cookie) as on_b:
            assert on_b.snapshot["active"]["message_id"] == message_id
            # The answer's reply to the joiner's sync: sent after it turned to Redis.
            await on_b.receive_until("sync")
            joined = await scrape(a)
            await on_b.receive_until("done", timeout=30)
        await on_a.receive_until("done")
    after = await scrape(a)

    saved = await Message.objects.aget(pk=message_id)
    assert saved.status == "complete"
    # Both sockets end with the saved text: the joiner's from its snapshot, its sync and
    # the pieces after, none of which it would have heard had they stayed on A.
    assert on_a.text_of(message_id) == saved.content
    assert on_b.text_of(message_id) == saved.content
    assert len(frames_of(on_b, "delta", message_id)) > 1
    # Straight before the join; through Redis after it, and nothing straight any more.
    assert ways(before, joined)[0] >= 5
    assert ways(joined, after)[0] == 0
    assert ways(joined, after)[1] > 1
