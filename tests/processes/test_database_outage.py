"""The database going away and coming back under two running daphne processes, across the
moment their answers end.

Both processes reach PostgreSQL through the tests' TCP forwarder (tests/support/servers.py),
which the test closes (every connection cut, new ones refused, as a stopped server does)
and opens again; the server itself, which other tests use, is never touched. Process A
generates the answers, process B only holds sockets and sweeps for orphans: the sweep that,
once the database is back, finds every heartbeat older than STREAM_ORPHAN_SECONDS.
"""

import contextlib
import time
from collections.abc import Callable
from itertools import islice

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection

from streaming.models import Conversation, Message
from streaming.simulator.text import answer_tokens
from tests.support.frames import user_message
from tests.support.live import LiveClient, frame, frames_of, reading
from tests.support.servers import DaphneServer, TcpForwarder, database_url_through
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

ANSWERS = 4
TOKENS = 120
CHECKPOINT_SECONDS = 0.3
ORPHAN_SECONDS = 6.0
#: How long the database stays out of reach past the last heartbeat: long enough that
#: every heartbeat is stale when it comes back, as in a restart of a few seconds.
STALE_BY_SECONDS = 1.5


def outage_servers(
    live_servers: Callable[..., list[DaphneServer]], forwarder: TcpForwarder, redis_url: str
) -> tuple[DaphneServer, DaphneServer]:
    """Processes A and B, on one Redis, each reaching the database through ``forwarder``."""
    env = {
        "DATABASE_URL": database_url_through(connection.settings_dict, forwarder),
        "STREAM_CHECKPOINT_SECONDS": str(CHECKPOINT_SECONDS),
        "STREAM_ORPHAN_SECONDS": str(ORPHAN_SECONDS),
        "LIMIT_ANSWERS_PER_USER": str(ANSWERS),
        "LOG_LEVEL": "INFO",
    }
    (a,) = live_servers(1, redis_url=redis_url, **env)
    (b,) = live_servers(1, redis_url=redis_url, **env)
    return a, b


async def test_answers_ending_while_the_database_is_out_of_reach_end_as_they_did(
    live_servers: Callable[..., list[DaphneServer]],
    forwarder: TcpForwarder,
    redis_url: str,
    user: User,
    cookie: str,
) -> None:
    a, b = outage_servers(live_servers, forwarder, redis_url)
    conversations = [await Conversation.objects.acreate(owner=user) for _ in range(ANSWERS)]
    prompts = [f"outage number {n}" for n in range(ANSWERS)]
    expected = ["".join(islice(answer_tokens(p), TOKENS)) for p in prompts]
    async with contextlib.AsyncExitStack() as stack:
        senders = [
            await stack.enter_async_context(LiveClient(a, c.id, cookie)) for c in conversations
        ]
        watchers = [
            await stack.enter_async_context(LiveClient(b, c.id, cookie)) for c in conversations
        ]
        async with reading(*senders, *watchers):
            for sender, prompt in zip(senders, prompts, strict=True):
                await sender.send(user_message(f"{prompt} sim:tokens={TOKENS} sim:rate=80"))
            ids = [(await frame(w, "start"))["message_id"] for w in watchers]

            async def all_checkpointed() -> bool:
                rows = [await Message.objects.aget(pk=i) for i in ids]
                return all(row.seq > 0 for row in rows)

            await until(all_checkpointed, what="a checkpoint of every answer", timeout=20)
            await sync_to_async(forwarder.close)()
            cut_at = time.monotonic()

            # Each answer streams to its end (every client has all of its text live), and
            # its end cannot be written.
            def all_sent() -> bool:
                return all(
                    w.text_of(i) == text for w, i, text in zip(watchers, ids, expected, strict=True)
                )

            await until(all_sent, what="every answer's whole text on the sockets", timeout=30)
            unsaved = [f"Could not save the end of answer {i}" for i in ids]
            await until(
                lambda: all(line in a.log() for line in unsaved),
                what="A failing to save every ending",
                timeout=20,
            )
            await until(lambda: "Orphan sweep failed" in b.log(), what="B failing to sweep")
            await until(
                lambda: time.monotonic() > cut_at + ORPHAN_SECONDS + STALE_BY_SECONDS,
                what="every heartbeat older than STREAM_ORPHAN_SECONDS",
                timeout=ORPHAN_SECONDS + STALE_BY_SECONDS + 30,
            )
            # Nothing ended them while the database was out: not announced, not written.
            assert all(not frames_of(w, "done") for w in watchers)
            during = [await Message.objects.aget(pk=i) for i in ids]
            assert {row.status for row in during} == {"streaming"}

            await sync_to_async(forwarder.open)()
            back_at = time.monotonic()
            arrived: dict[str, float] = {}

            def each_done() -> bool:
                for w, answer_id in zip(watchers, ids, strict=True):
                    if answer_id not in arrived and frames_of(w, "done", answer_id):
                        arrived[answer_id] = time.monotonic() - back_at
                return len(arrived) == ANSWERS

            await until(each_done, what="every answer's done", timeout=30)

    print(f"outage {back_at - cut_at:.1f} s; done after the return: {sorted(arrived.values())}")
    for watcher, answer_id, text in zip(watchers, ids, expected, strict=True):
        row = await Message.objects.aget(pk=answer_id)
        # One `done` from the group; a sync the socket sent while it waited is answered
        # with the same one from the database.
        dones = frames_of(watcher, "done", answer_id)
        assert {(d["status"], d["message"]["content"]) for d in dones} == {("complete", text)}
        assert (row.status, row.error, row.content) == ("complete", "", text)
        assert row.finish_reason == "stop"
        assert (row.completion_tokens, row.prompt_tokens is not None) == (TOKENS, True)
        assert row.heartbeat_at is None
        # Its own process ended it, soon after the database came back: a sweep could not
        # have before STREAM_ORPHAN_SECONDS more.
        assert arrived[answer_id] < ORPHAN_SECONDS, arrived
    # No sweep took them, stale as their heartbeats were (how the sweep waits after an
    # outage is shown, sweep by sweep, in tests/stream/test_outages.py).
    assert "orphaned answer(s) interrupted" not in a.log() + b.log()
    assert "had already ended" not in a.log()
