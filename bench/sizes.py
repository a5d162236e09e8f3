"""Conversations of every size, opened on one daphne process: the page (its bytes and time),
the snapshot over a real socket (its time, how many socket messages carry it, the longest
of them, held to FRAME_BUDGET_BYTES: daphne closes a socket with 1011 rather than send over
1 MiB), and what opening it costs the process in memory.

    python -m bench sizes

Needs PostgreSQL (BENCH_DATABASE_URL); the in-memory channel layer, one process.
"""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from bench import procstat
from bench.stack import DATABASE_URL, one_process_env, setup_django
from tests.support.live import LiveClient
from tests.support.servers import DaphneServer, daphne_servers

# The longest message a person may send, in a script JSON writes as one escape a character.
CJK = "長い会話の文字"
# How many sockets open the conversation at once, as tabs or people would.
SOCKETS = 10


class PatientClient(LiveClient):
    """A socket that waits as long as a snapshot takes: measuring it, not judging it."""

    async def receive(self, timeout: float = 300) -> dict[str, Any]:  # noqa: ASYNC109 - LiveClient's
        return await super().receive(timeout)


def run(var: Path) -> list[tuple[str, str]]:
    cookie, user = setup_django(DATABASE_URL)
    cases = {
        "3 turns of 32,000 CJK characters (1.15 MB as JSON)": _cjk(user),
        "10,000 messages of ~500 characters (5 MB)": _many(user, 10_000, 500),
    }
    env = one_process_env()
    rows = []
    with daphne_servers(1, env, var) as (server,):
        for label, conversation_id in cases.items():
            print(f"opening: {label}", flush=True)
            rows.append((label, asyncio.run(_open(server, conversation_id, cookie))))
    return rows


async def _open(server: DaphneServer, conversation_id: str, cookie: str) -> str:
    pid = server.process.pid
    async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as http:
        started = time.perf_counter()
        response = await http.get(f"/c/{conversation_id}/", timeout=300)
        page_s = time.perf_counter() - started
    response.raise_for_status()
    procstat.reset_peak_memory(pid)
    before = procstat.status_mib(pid, "VmRSS")
    started = time.perf_counter()
    async with PatientClient(server, conversation_id, cookie) as client:
        first = time.perf_counter() - started
        size = len(json.dumps(client.snapshot))
        longest = client.joiner.longest
    started = time.perf_counter()
    clients = [PatientClient(server, conversation_id, cookie) for _ in range(SOCKETS)]
    await asyncio.gather(*(client.__aenter__() for client in clients))
    together = time.perf_counter() - started
    peak = procstat.status_mib(pid, "VmHWM")
    await asyncio.gather(*(client.__aexit__(None, None, None) for client in clients))
    parts = -(-size // longest) if size > longest else 1
    return (
        f"page {len(response.content) / 1000:.0f} kB in {page_s * 1000:.0f} ms; "
        f"snapshot {size / 1e6:.2f} MB in {parts} socket message(s), longest "
        f"{longest / 1024:.0f} KiB; first socket {first * 1000:.0f} ms; {SOCKETS} at once "
        f"{together:.2f} s; daphne RSS {before:.0f} → peak {peak:.0f} MiB"
    )


def _cjk(user: Any) -> str:
    from streaming.models import Conversation, Message

    text = (CJK * 5000)[:32_000]
    conversation = Conversation.objects.create(owner=user, title="bench: CJK")
    parent = None
    for _ in range(3):
        question = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, content=text, parent=parent
        )
        parent = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            content=text,
            status=Message.Status.COMPLETE,
            parent=question,
        )
    conversation.leaf = parent
    conversation.save(update_fields=["leaf"])
    return str(conversation.id)


def _many(user: Any, count: int, chars: int) -> str:
    import uuid

    from streaming.models import Conversation, Message

    conversation = Conversation.objects.create(owner=user, title=f"bench: {count} messages")
    messages = []
    parent_id = None
    for index in range(count):
        role = Message.Role.USER if index % 2 == 0 else Message.Role.ASSISTANT
        message = Message(
            id=uuid.uuid4(),
            conversation=conversation,
            role=role,
            content=(f"message {index} " + "lorem ipsum " * chars)[:chars],
            status=Message.Status.COMPLETE,
            parent_id=parent_id,
        )
        messages.append(message)
        parent_id = message.id
    Message.objects.bulk_create(messages, batch_size=2000)
    conversation.leaf_id = parent_id
    conversation.save(update_fields=["leaf"])
    return str(conversation.id)
