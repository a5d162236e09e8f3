"""Concurrent answers through one real daphne process: latency, overhead, memory.

N browser-like WebSocket clients each send a message in its own conversation; the simulator
answers each with T tokens at R tokens/s. An ideal relay would deliver every answer in
exactly T/R seconds; the figures say how far from that one process is.
"""

import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from bench.stack import LIFTED_LIMITS

ROOT = Path(__file__).resolve().parent.parent
TOKENS, RATE = 200, 100.0


def setup_django() -> dict[str, str]:
    """Settings for the bench: its own database, the env's REDIS_URL if any."""
    (ROOT / "var").mkdir(exist_ok=True)
    env = {
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "SECRET_KEY": "bench-only-secret",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL")
        or f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        **LIFTED_LIMITS,
    }
    if os.environ.get("BENCH_REDIS_URL"):
        env["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]
    else:
        os.environ.pop("REDIS_URL", None)  # the in-memory layer, as `make run` has it
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def one_answer(server: Any, conversation_id: Any, cookie: str) -> dict[str, float]:
    """Send one message as a browser tab would and time its answer."""
    from tests.support.live import LiveClient

    async with LiveClient(server, conversation_id, cookie) as client:
        sent = time.perf_counter()
        await client.send(
            {
                "type": "user_message",
                "content": f"bench sim:tokens={TOKENS} sim:rate={RATE:g}",
                "client_id": str(uuid.uuid4()),
            }
        )
        await client.receive_until("delta", timeout=120)
        first = time.perf_counter()
        done = await client.receive_until("done", timeout=120)
        assert done["status"] == "complete", done
        if not client.assembler.gaps:
            assert client.text_of(done["message_id"]) == done["message"]["content"]
        return {
            "ttfd": first - sent,
            "total": time.perf_counter() - sent,
            "frames": sum(1 for f in client.frames if f["type"] == "delta"),
            "gaps": client.assembler.gaps,
        }


def run(concurrency: tuple[int, ...] = (1, 20, 100)) -> list[tuple[str, str]]:
    env = setup_django()
    from django.contrib.auth.models import User
    from django.test import Client

    from streaming.models import Conversation
    from streaming.simulator import SimulatorThread
    from tests.support.servers import DaphneServer

    user, _ = User.objects.get_or_create(username="bench")
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    rows = []
    layer = "channels-redis" if "REDIS_URL" in env else "in-memory layer"
    database = env["DATABASE_URL"].split(":", 1)[0]
    with SimulatorThread(rate=RATE, tokens=TOKENS) as simulator:
        server = DaphneServer(
            {**os.environ, **env, "OPENAI_BASE_URL": simulator.base_url, "OPENAI_API_KEY": ""},
            ROOT / "var" / "bench-daphne.log",
        )
        try:
            idle = rss_mib(server.process.pid)
            rows.append((f"daphne RSS at rest ({layer}, {database})", f"{idle:.0f} MiB"))
            for n in concurrency:
                conversations = [Conversation.objects.create(owner=user) for _ in range(n)]

                ids = [c.id for c in conversations]

                async def all_answers(ids: list[Any]) -> list[dict[str, Any]]:
                    return await asyncio.gather(*(one_answer(server, i, cookie) for i in ids))

                started = time.perf_counter()
                results = asyncio.run(all_answers(ids))
                wall = time.perf_counter() - started
                ttfd = sorted(r["ttfd"] for r in results)
                totals = [r["total"] for r in results]
                ideal = TOKENS / RATE
                rows.append(
                    (
                        f"{n} concurrent answers of {TOKENS} tokens at {RATE:g}/s",
                        f"first text p50 {statistics.median(ttfd) * 1000:.0f} ms, "
                        f"p95 {ttfd[int(0.95 * (len(ttfd) - 1))] * 1000:.0f} ms; "
                        f"answer {statistics.mean(totals):.2f} s (ideal {ideal:.2f} s); "
                        f"{statistics.mean(r['frames'] for r in results):.0f} delta frames "
                        f"per answer, {sum(r['gaps'] for r in results):.0f} gaps healed; "
                        f"wall {wall:.2f} s; RSS {rss_mib(server.process.pid):.0f} MiB",
                    )
                )
        finally:
            server.stop()
    return rows
