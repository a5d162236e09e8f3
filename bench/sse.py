"""How fast the SSE decoder and the chunk parser turn bytes into events."""

import json
import time
from collections.abc import Callable

from streaming.openai import _chunk_events
from streaming.sse import SSEDecoder


def openai_stream(tokens: int) -> bytes:
    """A realistic Chat Completions stream of ``tokens`` content chunks."""
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench",
        "system_fingerprint": "fp_bench",
        "choices": [
            {"index": 0, "delta": {"content": " café"}, "logprobs": None, "finish_reason": None}
        ],
        "usage": None,
    }
    line = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    return line * tokens + b"data: [DONE]\n\n"


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def run() -> list[tuple[str, str]]:
    """Rows of (what, figure)."""
    data = openai_stream(20_000)
    rows = []
    for size in (64, 1024, 16384):
        pieces = [data[i : i + size] for i in range(0, len(data), size)]

        def decode(pieces: list[bytes] = pieces) -> None:
            decoder = SSEDecoder()
            for piece in pieces:
                decoder.feed(piece)

        seconds = best_of(5, decode)
        rows.append(
            (
                f"SSE decoder, {size}-byte reads",
                f"{len(data) / seconds / 1e6:.1f} MB/s, {20_000 / seconds / 1e3:.0f}k events/s",
            )
        )
    events = SSEDecoder().feed(data)

    def parse() -> None:
        for event in events[:-1]:
            list(_chunk_events(json.loads(event.data)))

    seconds = best_of(5, parse)
    rows.append(("chunk JSON → typed events", f"{len(events) / seconds / 1e3:.0f}k chunks/s"))
    return rows
