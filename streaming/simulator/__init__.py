"""A built-in OpenAI-compatible Chat Completions server, for development and tests.

Standard library only, no Django: `make run` starts it when no API key is set, and the tests
talk to it over real HTTP on loopback. It speaks OpenAI's streaming wire format exactly
(`data: <chunk>` events, `data: [DONE]`, chunked transfer coding), answers deterministically
(the same last user message always gets the same text), and fails on request.

    async with Simulator(rate=0) as simulator:
        client = httpx.AsyncClient(base_url=simulator.base_url)

    with SimulatorThread(rate=0) as simulator:      # from synchronous code
        ...

    python -m streaming.simulator --port 8001       # from a shell

Routes (with or without the /v1 prefix): POST /v1/chat/completions, GET /v1/models, and for
tests GET /_simulator/requests (what was asked, keys never shown) and DELETE to reset it.

Directives are `sim:key=value` words in the last user message; they are removed from the text
the answer quotes. An unknown key or a bad value is answered with a 400 naming the word.

================  ===================  ====================================================
directive         values               meaning
================  ===================  ====================================================
sim:tokens=N      0-100000             answer length in content tokens (default: server's,
                                       60)
sim:rate=R        0-1e6                tokens per second (default: server's, 50); 0 = no
                                       delay; each token chunk waits 1/R s
sim:status=CODE   400-599              reply CODE with OpenAI's error body instead of an
                                       answer (401, 403, 404, 429, 500, 502, 503 carry
                                       OpenAI's wording and codes)
sim:retry_after=S 0-86400              with status: add a `Retry-After: S` header
sim:times=K       1-1000000            with status: fail only the first K requests with
                                       this exact message, then answer normally
sim:fault=error   after=N              after N content tokens, an OpenAI error event, then
                                       the body ends cleanly, without [DONE]
sim:fault=drop    after=N              after N content tokens, abort the TCP connection
sim:fault=stall   after=N, stall=S     after N content tokens, S seconds of silence
                                       (default 3600), then the rest of the answer
sim:fault=badjson after=N              after N content tokens, `data: {"choices": [` (not
                                       JSON), then the rest of the answer
sim:after=N       0-100000             with fault: content tokens before it (default 3;
                                       capped at the answer's length)
sim:stall=S       0-86400              with fault=stall: seconds of silence
sim:reasoning=N   0-100000             N `reasoning_content` deltas before the content
sim:keepalive=1   0/1                  SSE comments `: keep-alive` before the first chunk
                                       and every 5 chunks (as OpenRouter does)
sim:azure=1       0/1                  first event is Azure's prompt-filter chunk
                                       (`"choices": []`, empty id/model/object)
sim:nodelta=1     0/1                  one chunk whose choice has no `delta` key, before
                                       the content
sim:stamp=1       0/1                  each content token is the time it is written to the
                                       socket: time.time() with six decimals and a space,
                                       "1764032000.123456 " (stamps.py reads them back)
sim:refuse=F      a field name         a 400 with OpenAI's "Unsupported parameter" error
                                       when the request carries the field F (max_tokens
                                       or max_completion_tokens)
================  ===================  ====================================================

A request whose last message is the assistant's asks to continue that answer (one cut off
at its length limit), as llama.cpp's server and Ollama take it: that message is the start
of the answer to the last user message, and what follows it is sent. `sim:tokens` counts
the whole answer, that start included, so an answer cut at `max_tokens` and continued until
it ends is the answer the same message gets without a limit.

Without `stream`, faults shape the JSON reply instead: error gives a 500, drop aborts
before any reply, stall delays it, badjson sends a truncated body, and stamp gives every
token the time of the reply. `max_tokens` (or `max_completion_tokens`) cuts the content
short with finish_reason "length".
"""

from .server import Simulator
from .thread import SimulatorThread

__all__ = ["Simulator", "SimulatorThread"]
