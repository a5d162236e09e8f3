"""How fast the SSE decoder and the chunk parser turn bytes into events, beside httpx-sse."""

import json
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from importlib.metadata import version

from httpx._decoders import TextDecoder
from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
from httpx_sse._decoders import SSELineDecoder
from httpx_sse._models import ServerSentEvent

from streaming.openai import StreamEvent, _chunk_events
from streaming.sse import Event, SSEDecoder

# What a model sends as content: mostly short ASCII pieces, with accents, CJK, emoji (one of
# them a ZWJ sequence), newlines and the odd long piece, so chunks vary in length and a read
# often ends inside a multi-byte character.
TOKENS = (
    " the", " a", " of", " to", " and", " stream", "ing", " is", ",", ".", " Hello", " world",
    " café", " naïve", " résumé", " Straße", " déjà", " vu", " 日本語", "の", "です", "。",
    " 中文", " 🙂", " 👩‍💻", " ñ", " Ω", "\n", "\n\n", "```python\n", "    return x\n",
    " a considerably longer token that carries a whole phrase at once",
)  # fmt: skip


def openai_stream(chunks: int, seed: int = 0) -> bytes:
    """A Chat Completions stream as OpenAI sends it, with ``chunks`` content chunks.

    A role chunk, the content chunks, a finish chunk, a usage chunk (``include_usage``) and
    ``[DONE]``; the JSON is compact and its non-ASCII text raw UTF-8, as the API writes it.
    """
    rng = random.Random(seed)

    def chunk(choices: list[object], usage: object = None) -> bytes:
        body = {
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion.chunk",
            "created": 1741569952,
            "model": "gpt-4o-2024-08-06",
            "service_tier": "default",
            "system_fingerprint": "fp_eb9dce56a8",
            "choices": choices,
            "usage": usage,
        }
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return b"data: " + text.encode() + b"\n\n"

    def choice(delta: dict[str, object], finish_reason: str | None = None) -> list[object]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    parts = [chunk(choice({"role": "assistant", "content": "", "refusal": None}))]
    for _ in range(chunks):
        content = "".join(rng.choices(TOKENS, k=rng.choice((1, 1, 1, 2, 3))))
        parts.append(chunk(choice({"content": content})))
    parts.append(chunk(choice({}, "stop")))
    usage = {
        "prompt_tokens": 27,
        "completion_tokens": chunks,
        "total_tokens": 27 + chunks,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    parts.append(chunk([], usage))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def random_reads(data: bytes, seed: int, largest: int = 4096) -> list[bytes]:
    """``data`` cut into reads of 1 to ``largest`` bytes, as a socket might deliver it."""
    rng = random.Random(seed)
    reads = []
    start = 0
    while start < len(data):
        end = start + rng.randint(1, largest)
        reads.append(data[start:end])
        start = end
    return reads


def our_events(reads: Iterable[bytes]) -> Iterator[Event]:
    """Our decoder's events from ``reads``, each as soon as it is complete."""
    decoder = SSEDecoder()
    for read in reads:
        yield from decoder.feed(read)
    yield from decoder.close()


def httpx_sse_events(reads: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """httpx-sse's events from ``reads``, each as soon as it is complete.

    The steps of ``EventSource.aiter_sse`` over ``Response.aiter_text``: httpx's incremental
    UTF-8 decoder, httpx-sse's line decoder, then its event decoder; without the per-line
    generator and the HTTP response between them, which would only add to its time.
    """
    text_decoder = TextDecoder("utf-8")
    line_decoder = SSELineDecoder()
    decoder = HttpxSSEDecoder()

    def texts() -> Iterator[str]:
        yield from map(text_decoder.decode, reads)
        yield text_decoder.flush()

    for text in texts():
        if text:  # httpx's TextChunker passes on only non-empty text
            for line in line_decoder.decode(text):
                sse = decoder.decode(line.rstrip("\n"))
                if sse is not None:
                    yield sse
    for line in line_decoder.flush():
        sse = decoder.decode(line.rstrip("\n"))
        if sse is not None:
            yield sse


def as_tuples(
    events: Iterable[Event] | Iterable[ServerSentEvent],
) -> list[tuple[str, str, str, int | None]]:
    """(event, data, id, retry) of each event, to compare the two decoders' output."""
    return [(e.event, e.data, e.id, e.retry) for e in events]


def best_of(runs: int, *works: Callable[[], Iterable[object]]) -> list[float]:
    """The least CPU time of each of ``works``, run in turns so that noise hits them alike."""
    # CPU time rather than wall time: on a shared machine, time spent waiting for a core is
    # not the decoder's.
    best = [float("inf")] * len(works)
    for _ in range(runs):
        for i, work in enumerate(works):
            start = time.process_time()
            deque(work(), maxlen=0)  # take each event and drop it, as a client does
            best[i] = min(best[i], time.process_time() - start)
    return best


def run() -> list[tuple[str, str]]:
    """Rows of (what, figure)."""
    chunks = 20_000
    data = openai_stream(chunks)
    count = chunks + 4  # role, content, finish, usage, [DONE]
    rows = []

    def rate(seconds: float) -> str:
        return f"{len(data) / seconds / 1e6:.1f} MB/s, {count / seconds / 1e3:.0f}k events/s"

    for size in (64, 1024, 16384):
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        [seconds] = best_of(5, partial(our_events, pieces))
        rows.append((f"SSE decoder, {size}-byte reads", rate(seconds)))

    reads = random_reads(data, seed=1)
    ours = as_tuples(our_events(reads))
    if ours != as_tuples(httpx_sse_events(reads)) or len(ours) != count:
        raise AssertionError("the decoder and httpx-sse disagree on the benchmark stream")
    ours_s, theirs_s = best_of(9, partial(our_events, reads), partial(httpx_sse_events, reads))
    rows.append(("SSE decoder, random 1-4096-byte reads", rate(ours_s)))
    rows.append((f"httpx-sse {version('httpx-sse')}, the same reads", rate(theirs_s)))
    rows.append(("SSE decoder ÷ httpx-sse, events/s", f"{theirs_s / ours_s:.2f}x"))

    events = SSEDecoder().feed(data)

    def parse() -> Iterator[StreamEvent]:
        for event in events[:-1]:
            yield from _chunk_events(json.loads(event.data))

    [seconds] = best_of(5, parse)
    rows.append(("chunk JSON → typed events", f"{len(events) / seconds / 1e3:.0f}k chunks/s"))
    return rows
