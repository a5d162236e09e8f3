"""Relay load: the latency daphne adds to every token when N sockets stream at once.

N WebSocket clients (the tests' LiveClient, which heals gaps as the page does) each open
their own conversation and send one message; the simulator answers each with 150 tokens at
50 tokens/s, and `sim:stamp=1` makes every token's text the time the simulator wrote it to
its socket. Added latency = when the client read the token minus that stamp, over every
token of every socket. All N messages are sent in the same instant (`--ramp` spreads them),
after all N sockets have connected (20 handshakes at a time, not measured).

Where things run, on the same cores: daphne in its own process(es) (their CPU is the
"server CPU"), the simulator in a process of its own (so its CPU is neither daphne's nor
the client's), and all N clients on one event loop in the benchmark's process. Redis and
PostgreSQL are the machine's; other work on them shows in their CPU figures.
"""

import asyncio
import functools
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench import procstat
from bench.stack import (
    DATABASE_URL,
    REDIS_URL,
    SimulatorProcess,
    layer_backend,
    logged_in,
    one_process_env,
    setup_django,
    unreachable,
)
from streaming.simulator.stamps import read_stamps
from tests.support.live import LiveClient
from tests.support.servers import DaphneServer, daphne_servers

ROOT = Path(__file__).resolve().parent.parent
TOKENS, RATE = 150, 50.0
MODEL_DELAY = 1 / RATE
"""The simulator waits 1/rate before every token, the first one included."""
BASE_N = (1, 20, 50, 100, 200)
STEP_N = 100
"""Past the base counts, N grows by this while the relay holds."""
HOLD_P99_MS = 1000.0
"""The relay holds at N while p99 added latency stays under this and nothing is lost."""
CONNECTING = 20
"""Handshakes in flight at once while the sockets open."""
GRACE = 60.0
"""Seconds past the ideal 150/50 s that an answer may take before it counts as unfinished."""
Layer = Literal["core", "pubsub"]
Loop = Literal["uvloop", "asyncio"]
LAYER_BACKENDS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "chatsite.pubsub.PipelinedPubSubChannelLayer",
}


Observer = Callable[[list[int]], AbstractContextManager[None]]
"""Given the daphnes' pids, a context that wraps one row's measured window."""


def _unobserved(pids: list[int]) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass(frozen=True)
class Config:
    """One server setup: how many daphne processes share Redis, which Redis layer, which
    event loop they run on (UVLOOP), and whether pieces may skip Redis
    (STREAM_LOCAL_DELIVERY), and what the model's streams are read through (OPENAI_HTTP)."""

    daphnes: int
    layer: Layer
    loop: Loop = "uvloop"
    #: Each socket's answer is a user of its own (N people), not all one user's (N tabs).
    people: bool = False
    local: bool = False
    http: str = "aiohttp"

    @property
    def label(self) -> str:
        processes = "1 daphne" if self.daphnes == 1 else f"{self.daphnes} daphnes"
        layer = "channels-redis" if self.layer == "core" else "channels-redis pub/sub"
        whose = ", a user each" if self.people else ""
        local = ", local delivery" if self.local else ""
        http = "" if self.http == "aiohttp" else f", reading over {self.http}"
        return f"{processes}, {self.loop}, {layer}, PostgreSQL{whose}{local}{http}"

    def command(self, n: int | None = None) -> str:
        """The command that measures this setup (at one N, if given)."""
        loop = f" --loop {self.loop}" if self.loop != "uvloop" else ""
        people = " --people" if self.people else ""
        local = " --local on" if self.local else ""
        http = "" if self.http == "aiohttp" else f" --http {self.http}"
        only = f" --n {n}" if n is not None else ""
        return (
            f"python -m bench load --daphnes {self.daphnes} --layer {self.layer}"
            f"{loop}{people}{local}{http}{only}"
        )

    def environment(self, simulator_url: str) -> dict[str, str]:
        """daphne's environment for this setup, on the benchmark's services."""
        return one_process_env(
            REDIS_URL=REDIS_URL,
            OPENAI_BASE_URL=simulator_url,
            OPENAI_API_KEY="",
            # Read by the settings to choose the channels-redis layer (core or pubsub).
            CHANNEL_LAYER=self.layer,
            # Read by chatsite/daphne.py, before daphne loads, to choose the event loop.
            UVLOOP="true" if self.loop == "uvloop" else "false",
            STREAM_LOCAL_DELIVERY="true" if self.local else "false",
            OPENAI_HTTP=self.http,
        )


@dataclass
class Row:
    """What N concurrent answers did on one setup."""

    config: str
    """Config.label."""
    n: int
    """Sockets, one answer each."""
    added_p50_ms: float
    """Median added latency over every token received."""
    added_p99_ms: float
    """99th percentile of the same."""
    added_max_ms: float
    """The worst token."""
    first_text_p50_ms: float
    """Median time from sending to the first text, less the model's own first-token delay."""
    before_upstream_p50_ms: float
    """Median time from sending to the model's first token, less its own delay: the part
    of the first text's wait spent before the upstream answered."""
    lost: int
    """Tokens expected (150 per socket) minus tokens in the texts the clients assembled."""
    mismatched: int
    """Answers whose assembled text differs from the saved message, or that did not end
    `complete`."""
    unfinished: int
    """Sockets that saw no `done` within the time allowed (or lost their connection)."""
    gaps: int
    """Gaps the clients healed with `sync`."""
    cores: dict[str, float]
    """CPU in cores over the run: "daphne" (all processes), "client", "simulator",
    "redis", "postgres", "machine"."""
    peak_rss_mib: list[float]
    """Peak resident memory of each daphne process during the run."""
    wall_s: float
    """From the first message sent to the last `done` received."""
    ramp_s: float
    """Over how long the N messages were sent (0: all at once)."""
    errors: list[str] = field(default_factory=list)
    """A few distinct client errors, for the log."""

    @property
    def holds(self) -> bool:
        return (
            self.added_p99_ms <= HOLD_P99_MS
            and self.lost == 0
            and self.mismatched == 0
            and self.unfinished == 0
        )


def services_missing() -> str | None:
    """Why the load run cannot run here, or None when Redis and PostgreSQL answer."""
    return unreachable(DATABASE_URL, REDIS_URL)


def run(
    configs: list[Config],
    counts: tuple[int, ...] | None = None,
    *,
    max_n: int = 500,
    ramp: float = 0.0,
    observe: "Observer | None" = None,
) -> dict[Config, list[Row]]:
    """Measure every setup at each N; without `counts`, BASE_N then more while it holds.

    ``observe``, given the daphnes' pids, wraps each row's measured window (a profiler).
    """
    for layer in sorted({config.layer for config in configs}):
        # Checked before anything runs, so a missing setting costs no half-finished run.
        backend = layer_backend(Config(1, layer).environment("http://127.0.0.1:1/v1"))
        if backend != LAYER_BACKENDS[layer]:
            raise SystemExit(
                f"With CHANNEL_LAYER={layer} the server would use {backend}: "
                f"chatsite/settings.py must choose {LAYER_BACKENDS[layer]} for it."
            )
    cookie, user = setup_django(DATABASE_URL)
    results: dict[Config, list[Row]] = {}
    with SimulatorProcess(ROOT / "var" / "bench-simulator.log") as simulator:
        for config in configs:
            results[config] = _run_config(
                config,
                simulator,
                cookie,
                user,
                counts,
                max_n=max_n,
                ramp=ramp,
                observe=observe or _unobserved,
            )
    return results


def _run_config(
    config: Config,
    simulator: SimulatorProcess,
    cookie: str,
    user: Any,
    counts: tuple[int, ...] | None,
    *,
    max_n: int,
    ramp: float,
    observe: "Observer",
) -> list[Row]:
    from streaming.models import Conversation

    rows: list[Row] = []
    Conversation.objects.filter(owner__username__startswith="bench").delete()
    env = config.environment(simulator.base_url)
    with daphne_servers(config.daphnes, env, ROOT / "var") as servers:
        for server in servers:
            # At LOG_LEVEL=WARNING the loop is named only when uvloop was wanted and is not
            # the loop (chatsite/daphne.py): figures under the wrong name are worse than none.
            if config.loop == "uvloop" and "Event loop:" in (log := server.log()):
                raise SystemExit(f"daphne is not on uvloop; its log says:\n{log}")
        pids = [server.process.pid for server in servers]
        rest = ", ".join(f"{procstat.status_mib(pid, 'VmRSS'):.0f}" for pid in pids)
        _progress(f"{config.label}: daphne RSS at rest {rest} MiB")
        planned = list(counts or BASE_N)
        while planned:
            n = planned.pop(0)
            owners = [people(i) for i in range(n)] if config.people else [(cookie, user)] * n
            conversations = Conversation.objects.bulk_create(
                Conversation(owner=owner, title=f"load {n}") for _, owner in owners
            )
            ids = [str(c.id) for c in conversations]
            cookies = [cookie for cookie, _ in owners]
            row = asyncio.run(_one_row(config, servers, simulator, ids, cookies, ramp, observe))
            rows.append(row)
            _progress(
                f"{config.label}, N={n}: p50 {row.added_p50_ms:.0f} ms, p99 "
                f"{row.added_p99_ms:.0f} ms, lost {row.lost}, unfinished {row.unfinished}, "
                f"CPU {row.cores['daphne']:.2f}, wall {row.wall_s:.1f} s"
                + (f"; errors: {'; '.join(row.errors)}" if row.errors else "")
            )
            if row.unfinished:
                _progress(f"{config.label}: stopping, {row.unfinished} answers did not finish")
                break
            if not planned and counts is None and row.holds and n + STEP_N <= max_n:
                planned.append(max(n, BASE_N[-1]) + STEP_N)
        for server in servers:
            if tracebacks := server.log().count("Traceback"):
                _progress(f"{config.label}: {tracebacks} tracebacks in {server.log_path}")
    return rows


@functools.cache
def people(index: int) -> tuple[str, Any]:
    """The cookie and user of the index-th of the benchmark's people (``--people``)."""
    return logged_in(f"bench-{index}")


class LoadClient(LiveClient):
    """One socket, one answer: when each of its tokens arrived, and what it assembled."""

    def __init__(self, server: DaphneServer, conversation_id: str, cookie: str) -> None:
        super().__init__(server, conversation_id, cookie)
        self.answer_id: str | None = None
        self.latencies: list[float] = []
        self.sent_at = 0.0
        self.first_text_at: float | None = None
        self.first_stamp: float | None = None
        self.done_frame: dict[str, Any] | None = None
        self.error: str | None = None
        self._read = 0

    async def receive(self, timeout: float = 15) -> dict[str, Any]:  # noqa: ASYNC109 - LiveClient's
        frame = await super().receive(timeout)
        self.arrived(frame, time.time())
        return frame

    def arrived(self, frame: dict[str, Any], now: float) -> None:
        """Read the stamps that became complete in the assembled text with this frame."""
        # The conversation is new: the only answer any frame can name is this socket's.
        if frame["type"] in ("start", "delta", "sync", "done") and self.answer_id is None:
            self.answer_id = frame["message_id"]
        if self.answer_id is None:
            return
        stamps, self._read = read_stamps(self.text_of(self.answer_id), self._read)
        if stamps and self.first_text_at is None:
            self.first_text_at, self.first_stamp = now, stamps[0]
        self.latencies += [now - stamp for stamp in stamps]

    async def answer(self, delay: float, within: float) -> None:
        """Send the message after `delay` seconds and read frames until its `done`."""
        await asyncio.sleep(delay)
        self.sent_at = time.time()
        await self.send(
            {
                "type": "user_message",
                "content": f"load sim:tokens={TOKENS} sim:rate={RATE:g} sim:stamp=1",
                "client_id": str(uuid.uuid4()),
            }
        )
        try:
            self.done_frame = await self.receive_until("done", timeout=within)
        except Exception as exc:  # a timeout or a lost connection: counted, not fatal
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def received(self) -> int:
        return len(self.latencies)

    @property
    def matches(self) -> bool:
        """Whether the answer ended complete with the text this socket assembled."""
        if self.done_frame is None or self.answer_id is None:
            return False
        saved = self.done_frame.get("message", {}).get("content")
        return bool(
            self.done_frame.get("status") == "complete" and self.text_of(self.answer_id) == saved
        )


async def _one_row(
    config: Config,
    servers: list[DaphneServer],
    simulator: SimulatorProcess,
    conversation_ids: list[str],
    cookies: list[str],
    ramp: float,
    observe: "Observer",
) -> Row:
    n = len(conversation_ids)
    # Sockets are split across the processes; each answer runs where its message arrived.
    clients = [
        LoadClient(servers[i % len(servers)], conversation_id, cookie)
        for i, (conversation_id, cookie) in enumerate(zip(conversation_ids, cookies, strict=True))
    ]
    connecting = asyncio.Semaphore(CONNECTING)

    async def connect(client: LoadClient) -> None:
        async with connecting:
            await client.__aenter__()

    await asyncio.gather(*(connect(client) for client in clients))
    daphne_pids = [server.process.pid for server in servers]
    for pid in daphne_pids:
        procstat.reset_peak_memory(pid)
    window = procstat.CpuWindow(
        {
            "daphne": lambda: daphne_pids,
            "client": lambda: [os.getpid()],
            "simulator": lambda: [simulator.pid],
            "redis": lambda: procstat.pids_named("redis-server"),
            "postgres": lambda: procstat.pids_named("postgres", "postmaster"),
        }
    )
    timeout = TOKENS / RATE + ramp + GRACE
    with observe(daphne_pids):
        window.start()
        started = time.monotonic()
        try:
            await asyncio.gather(
                *(client.answer(ramp * i / n, timeout) for i, client in enumerate(clients))
            )
            wall = time.monotonic() - started
            cores = window.stop()
        finally:
            await asyncio.gather(
                *(client.__aexit__(None, None, None) for client in clients),
                return_exceptions=True,
            )
    return _summary(config, clients, cores, daphne_pids, wall, ramp)


def _summary(
    config: Config,
    clients: list[LoadClient],
    cores: dict[str, float],
    daphne_pids: list[int],
    wall: float,
    ramp: float,
) -> Row:
    latencies = sorted(latency for client in clients for latency in client.latencies) or [0.0]
    first_text, upstream = [], []
    for client in clients:
        if client.first_text_at is not None and client.first_stamp is not None:
            first_text.append(client.first_text_at - client.sent_at - MODEL_DELAY)
            upstream.append(client.first_stamp - client.sent_at - MODEL_DELAY)
    return Row(
        config=config.label,
        n=len(clients),
        added_p50_ms=_quantile(latencies, 0.5) * 1000,
        added_p99_ms=_quantile(latencies, 0.99) * 1000,
        added_max_ms=latencies[-1] * 1000,
        first_text_p50_ms=statistics.median(first_text or [0.0]) * 1000,
        before_upstream_p50_ms=statistics.median(upstream or [0.0]) * 1000,
        lost=sum(max(0, TOKENS - client.received) for client in clients),
        mismatched=sum(not c.matches for c in clients if c.done_frame is not None),
        unfinished=sum(client.done_frame is None for client in clients),
        gaps=sum(client.assembler.gaps for client in clients),
        cores=cores,
        peak_rss_mib=[procstat.status_mib(pid, "VmHWM") for pid in daphne_pids],
        wall_s=wall,
        ramp_s=ramp,
        errors=sorted({client.error for client in clients if client.error})[:3],
    )


def _quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of sorted values: p99 is a value some token really had."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
