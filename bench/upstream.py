"""Reading the model's streams: CPU per token, in one process, as an answer reads them.

N streams from the simulator (a process of its own) at once, each TOKENS tokens at RATE
tokens/s, read through ``streaming.openai.stream_chat`` and the runtime's own kind of httpx
client. Read twice: token by token, as ``Answer`` reads since pieces go out without a fixed
wait, and paced to 50 ms pieces, as it read before (the reader slept until the piece was
due, so one network read took in several tokens: what a process that falls behind gets
too). CPU per token bounds how many tokens a second one process can take in, before it
sends anything to a socket.

``--transports httpx,aiohttp,exact`` reads the same streams through httpx with httpcore (the
runtime's), with the httpx-aiohttp transport (requirements-bench.txt; not exact), and with
streaming/aiohttp_transport.py (exact), alternating, ``--runs`` times each, and reports the
median and the range of each (docs/performance.md, "A faster HTTP path").
"""

import asyncio
import statistics
import time
from pathlib import Path
from typing import Literal

import httpx

from bench.stack import SimulatorProcess
from streaming.openai import ChatRequest, stream_chat

STREAMS, TOKENS, RATE, FLUSH = 100, 150, 50.0, 0.05

Transport = Literal["httpx", "aiohttp", "exact"]


async def _read(client: httpx.AsyncClient, base_url: str, paced: bool) -> int:
    request = ChatRequest(
        base_url=base_url,
        api_key="",
        model="bench",
        messages=[{"role": "user", "content": f"sim:tokens={TOKENS} sim:rate={RATE:g}"}],
    )
    loop = asyncio.get_running_loop()
    tokens, last_flush = 0, 0.0
    async for event in stream_chat(client, request):
        if event.type != "text":
            continue
        tokens += 1
        if paced:
            wait = last_flush + FLUSH - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                last_flush = loop.time()
    return tokens


def _client(transport: Transport) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=STREAMS)
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return httpx.AsyncClient(limits=limits, transport=AiohttpTransport(limits=limits))
    if transport == "exact":
        from streaming.aiohttp_transport import AiohttpTransport as Exact

        return httpx.AsyncClient(limits=limits, transport=Exact(limits=limits))
    return httpx.AsyncClient(limits=limits)


async def _cpu_per_token(base_url: str, paced: bool, transport: Transport) -> tuple[float, int]:
    async with _client(transport) as client:
        await _read(client, base_url, paced)  # warm: imports, the first connection
        cpu = time.process_time()
        counts = await asyncio.gather(*(_read(client, base_url, paced) for _ in range(STREAMS)))
        cpu = time.process_time() - cpu
    return cpu / sum(counts), sum(counts)


def run(
    log_dir: Path, transports: tuple[Transport, ...] = ("httpx",), runs: int = 1
) -> list[tuple[str, str]]:
    """Rows of (what, figure): CPU per token read, token by token and paced, for each
    transport; with several runs, the transports alternate (their order turned each run)
    and the rows give the median and the range."""
    rows = []
    with SimulatorProcess(log_dir / "bench-upstream-simulator.log") as simulator:
        for paced, how in ((False, "token by token"), (True, "paced to 50 ms pieces")):
            figures: dict[Transport, list[tuple[float, int]]] = {t: [] for t in transports}
            for round_ in range(runs):
                order = transports if round_ % 2 == 0 else transports[::-1]
                for transport in order:
                    figures[transport].append(
                        asyncio.run(_cpu_per_token(simulator.base_url, paced, transport))
                    )
            for transport in transports:
                rows.append(_row(transport, how, figures[transport], len(transports) > 1))
    return rows


def _row(
    transport: Transport, how: str, figures: list[tuple[float, int]], named: bool
) -> tuple[str, str]:
    per_token = statistics.median(cpu for cpu, _ in figures)
    tokens = figures[0][1]
    through = f", through {_NAMES[transport]}" if named else ""
    what = f"reading {STREAMS} streams at {RATE:g} tokens/s, {how}{through}"
    figure = f"{per_token * 1e6:,.0f} µs of CPU per token"
    if len(figures) > 1:
        low, high = min(cpu for cpu, _ in figures), max(cpu for cpu, _ in figures)
        figure += f" (median of {len(figures)}, {low * 1e6:,.0f} to {high * 1e6:,.0f})"
    return what, f"{figure} ({tokens:,} tokens), {1 / per_token:,.0f} tokens/s a core"


_NAMES: dict[Transport, str] = {
    "httpx": "httpx + httpcore",
    "aiohttp": "httpx + the httpx-aiohttp transport",
    "exact": "httpx + streaming/aiohttp_transport.py",
}
