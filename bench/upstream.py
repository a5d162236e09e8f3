"""Reading the model's streams: CPU per token, in one process, as an answer reads them.

N streams from the simulator (a process of its own) at once, each TOKENS tokens at RATE
tokens/s, read through ``streaming.openai.stream_chat`` and the runtime's own kind of httpx
client. Read twice: token by token, and paced as ``Answer`` paces its reader (while text
waits for its piece, the reader sleeps until the piece is due, so one network read takes in
several tokens). CPU per token bounds how many tokens a second one process can take in,
before it sends anything to a socket.
"""

import asyncio
import time
from pathlib import Path

import httpx

from bench.stack import SimulatorProcess
from streaming.openai import ChatRequest, stream_chat

STREAMS, TOKENS, RATE, FLUSH = 100, 150, 50.0, 0.05


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


async def _cpu_per_token(base_url: str, paced: bool) -> tuple[float, int]:
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=STREAMS)
    ) as client:
        await _read(client, base_url, paced)  # warm: imports, the first connection
        cpu = time.process_time()
        counts = await asyncio.gather(*(_read(client, base_url, paced) for _ in range(STREAMS)))
        cpu = time.process_time() - cpu
    return cpu / sum(counts), sum(counts)


def run(log_dir: Path) -> list[tuple[str, str]]:
    """Rows of (what, figure): CPU per token read, token by token and paced."""
    rows = []
    with SimulatorProcess(log_dir / "bench-upstream-simulator.log") as simulator:
        for paced, how in ((False, "token by token"), (True, "paced to 50 ms pieces")):
            per_token, tokens = asyncio.run(_cpu_per_token(simulator.base_url, paced))
            rows.append(
                (
                    f"reading {STREAMS} streams at {RATE:g} tokens/s, {how}",
                    f"{per_token * 1e6:,.0f} µs of CPU per token ({tokens:,} tokens), "
                    f"{1 / per_token:,.0f} tokens/s a core",
                )
            )
    return rows
