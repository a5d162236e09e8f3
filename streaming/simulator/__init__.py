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
sim:markdown=1    0/1                  the answer is a fixed sample of rich Markdown
                                       (text.MARKDOWN_SAMPLE), again and again as long as
                                       sim:tokens asks
sim:echokey=1     0/1                  every chunk and error names the request's API key as
                                       its model, as a careless provider might
sim:parts=1       0/1                  the answer is a line for each part of the last user
                                       message's content (a string is one text part):
                                       "part 1: text 42 chars sha256=<hex of its UTF-8>",
                                       "part 2: image_url image/png 4567 bytes sha256=<hex
                                       of the decoded bytes>" (" detail=high" if sent; an
                                       http(s) image: "url 31 chars sha256=<hex of the
                                       URL>"), so a test asserts what the model was sent
================  ===================  ====================================================

A message's content is a string or a list of parts, as OpenAI takes them: `{"type": "text",
"text": …}`, and in a user's message `{"type": "image_url", "image_url": {"url": …,
"detail": …}}`, whose URL is http(s) or a base64 data: URL of a PNG, JPEG, GIF or WebP.
Directives and the quoted prompt come from the text parts; any other part type, or a
malformed one, is answered with the 400 OpenAI sends. Recorded requests keep the parts as
sent, so a test can decode an image's bytes.

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
