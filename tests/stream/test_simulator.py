"""The built-in OpenAI-compatible simulator, over real HTTP on loopback (no mocks)."""

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from streaming.simulator import Simulator, SimulatorThread
from streaming.simulator.stamps import STAMP, read_stamps
from streaming.simulator.text import MARKDOWN_SAMPLE, markdown_tokens
from streaming.simulator.wire import MAX_BODY

PROJECT_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-simulator-test-key"


def chat(content: str, **extra: Any) -> dict[str, Any]:
    """A streaming request body with one user message."""
    return {
        "model": "test-model",
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        **extra,
    }


async def post_stream(client: httpx.AsyncClient, content: str, **extra: Any) -> tuple[int, str]:
    """POST a streaming request; return the status and the whole body as text."""
    async with client.stream("POST", "/chat/completions", json=chat(content, **extra)) as response:
        body = await response.aread()
    return response.status_code, body.decode()


async def collect(client: httpx.AsyncClient, content: str, into: bytearray) -> None:
    """Stream a request, adding the body to `into` as it arrives (what came stays if it fails)."""
    async with client.stream("POST", "/chat/completions", json=chat(content)) as response:
        async for piece in response.aiter_bytes():
            into += piece


def blocks(raw: str) -> list[str]:
    """Split an event stream into its blocks (events and comments)."""
    return [block for block in raw.split("\n\n") if block]


def data_of(raw: str) -> list[str]:
    """The `data:` payloads of an event stream, in order."""
    return [block.removeprefix("data: ") for block in blocks(raw) if block.startswith("data: ")]


def chunks_of(raw: str) -> list[dict[str, Any]]:
    """The JSON chunks of an event stream, [DONE] left out."""
    return [json.loads(data) for data in data_of(raw) if data != "[DONE]"]


def content_of(chunks: list[dict[str, Any]], field: str = "content") -> list[str]:
    """The `field` deltas of the chunks, one per token."""
    return [
        choice["delta"][field]
        for chunk in chunks
        for choice in chunk["choices"]
        if field in choice.get("delta", {})
        and choice["delta"][field]  # the role chunk's "content": "" is not a token
    ]


@pytest.mark.asyncio
async def test_stream_shape_with_include_usage(http: httpx.AsyncClient) -> None:
    async with http.stream(
        "POST", "/chat/completions", json=chat("Hello", stream_options={"include_usage": True})
    ) as response:
        raw = (await response.aread()).decode()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["transfer-encoding"] == "chunked"
    assert data_of(raw)[-1] == "[DONE]"
    chunks = chunks_of(raw)
    first, *tokens, finish, last = chunks
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert len(tokens) == 20
    assert all(set(t["choices"][0]["delta"]) == {"content"} for t in tokens)
    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 4, "completion_tokens": 20, "total_tokens": 24}
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    for chunk in chunks:
        assert chunk["id"] == first["id"]
        assert chunk["id"].startswith("chatcmpl-sim")
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "test-model"
        assert chunk["system_fingerprint"] == "fp_simulator"
        assert chunk["created"] == first["created"]


@pytest.mark.asyncio
async def test_stream_without_include_usage_has_no_usage(http: httpx.AsyncClient) -> None:
    status, raw = await post_stream(http, "Hello")
    assert status == 200
    chunks = chunks_of(raw)
    assert all("usage" not in chunk for chunk in chunks)
    assert all(chunk["choices"] for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert data_of(raw)[-1] == "[DONE]"


@pytest.mark.asyncio
async def test_stream_model_absent_echoes_server_default(http: httpx.AsyncClient) -> None:
    body = {"messages": [{"role": "user", "content": "Hello"}], "stream": True}
    async with http.stream("POST", "/chat/completions", json=body) as response:
        raw = (await response.aread()).decode()
    assert {chunk["model"] for chunk in chunks_of(raw)} == {"simulated"}


@pytest.mark.asyncio
async def test_text_same_request_is_deterministic(http: httpx.AsyncClient) -> None:
    _, first = await post_stream(http, "Tell me about rivers")
    _, second = await post_stream(http, "Tell me about rivers")
    assert content_of(chunks_of(first)) == content_of(chunks_of(second))


@pytest.mark.asyncio
async def test_text_different_message_differs(http: httpx.AsyncClient) -> None:
    _, first = await post_stream(http, "Tell me about rivers")
    _, second = await post_stream(http, "Tell me about bridges")
    assert content_of(chunks_of(first)) != content_of(chunks_of(second))


@pytest.mark.asyncio
async def test_text_echoes_message_without_directives(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(http, "one two sim:tokens=40 three four five six seven eight nine")
    text = "".join(content_of(chunks_of(raw)))
    assert text.startswith("You said “one two three four five six seven eight…”.\n\n")
    assert "sim:" not in text


@pytest.mark.asyncio
async def test_text_longer_answer_extends_shorter(http: httpx.AsyncClient) -> None:
    _, short = await post_stream(http, "Same prompt sim:tokens=10")
    _, long = await post_stream(http, "Same prompt sim:tokens=80")
    short_tokens, long_tokens = content_of(chunks_of(short)), content_of(chunks_of(long))
    assert long_tokens[:10] == short_tokens
    # Multi-byte UTF-8 beyond the curly quotes of the opening, and paragraphs.
    prose = "".join(long_tokens[10:])
    assert any(ord(character) > 127 for character in prose)
    assert "\n\n" in "".join(long_tokens)
    assert not long_tokens[0].startswith((" ", "\n"))
    assert all(token.startswith((" ", "\n\n")) for token in long_tokens[1:])


@pytest.mark.asyncio
async def test_tokens_directive_sets_answer_length(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(http, "Short please sim:tokens=7")
    assert len(content_of(chunks_of(raw))) == 7


@pytest.mark.asyncio
async def test_markdown_directive_sends_the_sample_once_by_default(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(http, "Render this sim:markdown=1 sim:rate=0")
    assert "".join(content_of(chunks_of(raw))) == MARKDOWN_SAMPLE.rstrip("\n")


@pytest.mark.asyncio
async def test_markdown_directive_with_more_tokens_repeats_the_sample(
    http: httpx.AsyncClient,
) -> None:
    once = len(markdown_tokens())
    _, raw = await post_stream(http, f"Long sim:markdown=1 sim:rate=0 sim:tokens={2 * once + 3}")
    pieces = content_of(chunks_of(raw))
    assert len(pieces) == 2 * once + 3
    sample = MARKDOWN_SAMPLE.rstrip("\n")
    text = "".join(pieces)
    # Each repetition is a block of its own, after a blank line: never glued to the last.
    assert text == f"{sample}\n\n{sample}\n\n## A rich"


@pytest.mark.asyncio
async def test_max_tokens_cuts_answer_with_finish_reason_length(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(
        http, "Long answer", max_tokens=5, stream_options={"include_usage": True}
    )
    chunks = chunks_of(raw)
    assert len(content_of(chunks)) == 5
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def continued(client: httpx.AsyncClient, question: str, so_far: str, **extra: Any) -> str:
    """The text the simulator streams to continue the answer ``so_far`` to ``question``."""
    body = chat(question, **extra)
    body["messages"].append({"role": "assistant", "content": so_far})
    async with client.stream("POST", "/chat/completions", json=body) as response:
        raw = (await response.aread()).decode()
    chunks = chunks_of(raw)
    reason = chunks[-1]["choices"][0]["finish_reason"]
    return "".join(content_of(chunks)) + f"|{reason}"


@pytest.mark.asyncio
async def test_a_last_assistant_message_is_continued_to_the_answers_length(
    http: httpx.AsyncClient,
) -> None:
    _, raw = await post_stream(http, "Go on sim:tokens=12")
    whole = "".join(content_of(chunks_of(raw)))
    _, raw = await post_stream(http, "Go on sim:tokens=12", max_tokens=5)
    first = "".join(content_of(chunks_of(raw)))

    second = await continued(http, "Go on sim:tokens=12", first, max_tokens=5)
    third = await continued(http, "Go on sim:tokens=12", first + second.split("|")[0])
    # Only its newest part sent (a long answer is): the same continuation.
    from_tail = await continued(http, "Go on sim:tokens=12", first[-6:], max_tokens=5)

    assert second.endswith("|length")
    assert third.endswith("|stop")
    assert first + second.split("|")[0] + third.split("|")[0] == whole
    assert from_tail == second


@pytest.mark.asyncio
async def test_rate_directive_paces_tokens(http: httpx.AsyncClient) -> None:
    started = time.monotonic()
    _, raw = await post_stream(http, "Slowly sim:rate=50 sim:tokens=5")
    assert time.monotonic() - started >= 0.09
    assert len(content_of(chunks_of(raw))) == 5


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "type_", "code"),
    [
        (401, "invalid_request_error", "invalid_api_key"),
        (403, "request_forbidden", "unsupported_country_region_territory"),
        (404, "invalid_request_error", "model_not_found"),
        (429, "requests", "rate_limit_exceeded"),
        (500, "server_error", None),
        (502, "server_error", None),
        (503, "server_error", None),
    ],
)
async def test_status_directive_returns_openai_error(
    http: httpx.AsyncClient, status: int, type_: str, code: str | None
) -> None:
    response = await http.post("/chat/completions", json=chat(f"Fail sim:status={status}"))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert "retry-after" not in response.headers
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == (type_, None, code)
    assert "data:" not in response.text
    if status == 404:
        assert error["message"] == (
            "The model `test-model` does not exist or you do not have access to it."
        )


@pytest.mark.asyncio
async def test_status_directive_with_retry_after_sets_header(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/chat/completions", json=chat("Slow down sim:status=429 sim:retry_after=7")
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["message"] == "Rate limit reached for requests"


@pytest.mark.asyncio
async def test_status_times_fails_twice_then_succeeds(
    http: httpx.AsyncClient, server: Simulator
) -> None:
    content = "Flaky sim:status=503 sim:times=2 sim:tokens=3"
    statuses = [(await post_stream(http, content))[0] for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    # Another message has its own count.
    assert (await post_stream(http, "Other " + content))[0] == 503
    assert len(server.requests) == 5


@pytest.mark.asyncio
async def test_fault_error_sends_error_event_without_done(http: httpx.AsyncClient) -> None:
    status, raw = await post_stream(http, "Break sim:fault=error sim:after=4")
    assert status == 200
    data = data_of(raw)
    assert json.loads(data[-1]) == {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert "[DONE]" not in data
    chunks = chunks_of(raw)[:-1]
    assert len(content_of(chunks)) == 4
    assert all(choice["finish_reason"] is None for c in chunks for choice in c["choices"])


@pytest.mark.asyncio
async def test_fault_drop_aborts_after_n_tokens(http: httpx.AsyncClient) -> None:
    received = bytearray()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await collect(http, "Drop sim:fault=drop sim:after=3", received)
    raw = received.decode()
    assert len(content_of(chunks_of(raw))) == 3
    assert "[DONE]" not in raw
    assert 'finish_reason":"stop' not in raw


@pytest.mark.asyncio
async def test_fault_stall_times_out_client_after_n_tokens(server: Simulator) -> None:
    received = bytearray()
    timeout = httpx.Timeout(5, read=0.3)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            await collect(client, "Stall sim:fault=stall sim:after=2", received)
    assert len(content_of(chunks_of(received.decode()))) == 2
    # The server notices the client gave up instead of holding the stream for an hour.
    for _ in range(100):
        if server.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert server.open_connections == 0


@pytest.mark.asyncio
async def test_fault_stall_short_then_completes(http: httpx.AsyncClient) -> None:
    started = time.monotonic()
    status, raw = await post_stream(http, "Pause sim:fault=stall sim:after=2 sim:stall=0.3")
    assert time.monotonic() - started >= 0.3
    assert status == 200
    assert len(content_of(chunks_of(raw))) == 20
    assert data_of(raw)[-1] == "[DONE]"


@pytest.mark.asyncio
async def test_fault_badjson_sends_invalid_event_then_completes(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(http, "Garble sim:fault=badjson sim:after=3")
    data = data_of(raw)
    bad = data.index('{"choices": [')
    before = [json.loads(item) for item in data[:bad]]
    after = [json.loads(item) for item in data[bad + 1 : -1]]
    assert len(content_of(before)) == 3
    assert len(content_of(after)) == 17
    assert data[-1] == "[DONE]"


@pytest.mark.asyncio
async def test_reasoning_directive_sends_reasoning_before_content(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(
        http, "Think sim:reasoning=4", stream_options={"include_usage": True}
    )
    chunks = chunks_of(raw)
    kinds = [next(iter(c["choices"][0]["delta"]), None) for c in chunks if c["choices"]]
    assert kinds[:6] == ["role", "reasoning_content", *["reasoning_content"] * 3, "content"]
    assert "reasoning_content" not in kinds[6:]
    assert len(content_of(chunks, "reasoning_content")) == 4
    assert chunks[-1]["usage"]["completion_tokens"] == 24


@pytest.mark.asyncio
async def test_keepalive_directive_sends_comments(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(http, "Ping sim:keepalive=1")
    parts = blocks(raw)
    assert parts[0] == ": keep-alive"
    assert parts.count(": keep-alive") > 2
    assert len(content_of(chunks_of(raw))) == 20


@pytest.mark.asyncio
async def test_azure_directive_sends_prompt_filter_chunk_first(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(http, "Azure sim:azure=1")
    first, second, *_ = chunks_of(raw)
    assert first == {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    }
    assert second["choices"][0]["delta"]["role"] == "assistant"
    assert len(content_of(chunks_of(raw))) == 20


@pytest.mark.asyncio
async def test_nodelta_directive_sends_choice_without_delta(http: httpx.AsyncClient) -> None:
    _, raw = await post_stream(http, "Odd sim:nodelta=1")
    chunks = chunks_of(raw)
    assert chunks[1]["choices"] == [{"index": 0, "finish_reason": None}]
    assert "content" in chunks[2]["choices"][0]["delta"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("field", "other"),
    [("max_tokens", "max_completion_tokens"), ("max_completion_tokens", "max_tokens")],
)
async def test_refuse_directive_refuses_only_requests_with_that_field(
    http: httpx.AsyncClient, field: str, other: str
) -> None:
    refused = await http.post(
        "/chat/completions", json=chat(f"Limit sim:refuse={field}", stream=True) | {field: 5}
    )
    accepted = await http.post(
        "/chat/completions", json=chat(f"Limit sim:refuse={field}", stream=False) | {other: 5}
    )

    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "message": f"Unsupported parameter: '{field}' is not supported with this model. "
        f"Use '{other}' instead.",
        "type": "invalid_request_error",
        "param": field,
        "code": "unsupported_parameter",
    }
    assert accepted.status_code == 200
    assert accepted.json()["choices"][0]["finish_reason"] == "length"


@pytest.mark.asyncio
async def test_stamp_directive_tokens_carry_their_write_time(http: httpx.AsyncClient) -> None:
    started = time.time()
    stamps: list[float] = []
    received: list[float] = []
    body = chat("Clock sim:stamp=1 sim:tokens=5 sim:rate=50")
    async with http.stream("POST", "/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            now = time.time()
            if not line.startswith("data: {"):
                continue
            for token in content_of([json.loads(line.removeprefix("data: "))]):
                assert STAMP.fullmatch(token), token
                stamps.append(float(token))
                received.append(now)
    assert len(stamps) == 5
    assert started < stamps[0]
    # Written 1/50 s apart, and each read back within moments of its stamp on loopback.
    assert all(later - earlier >= 0.015 for earlier, later in itertools.pairwise(stamps))
    assert all(0 <= now - stamp < 0.5 for stamp, now in zip(stamps, received, strict=True))


@pytest.mark.asyncio
async def test_stamp_directive_off_keeps_the_usual_text(http: httpx.AsyncClient) -> None:
    _, plain = await post_stream(http, "Same words")
    _, unstamped = await post_stream(http, "Same words sim:stamp=0")
    assert content_of(chunks_of(unstamped)) == content_of(chunks_of(plain))
    assert not any(STAMP.search(token) for token in content_of(chunks_of(plain)))


@pytest.mark.asyncio
async def test_stamp_directive_without_stream_stamps_every_token(
    http: httpx.AsyncClient,
) -> None:
    before = time.time()
    response = await http.post(
        "/chat/completions", json=chat("Clock sim:stamp=1 sim:tokens=4", stream=False)
    )
    content = response.json()["choices"][0]["message"]["content"]
    stamps, end = read_stamps(content)
    assert len(stamps) == 4
    assert end == len(content)
    assert before <= stamps[0] == stamps[-1] <= time.time()


def test_read_stamps_text_cut_anywhere_reads_each_stamp_once() -> None:
    text = "1764032000.000001 1764032000.020002 1764032000.040003 "
    for cut in range(len(text) + 1):
        first, offset = read_stamps(text[:cut])
        rest, end = read_stamps(text, offset)
        assert first + rest == [1764032000.000001, 1764032000.020002, 1764032000.040003]
        assert end == len(text)
    assert read_stamps("1764032000.000001") == ([], 0)  # its space has not arrived yet


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "word",
    [
        "sim:tokes=5",
        "sim:tokens=abc",
        "sim:tokens=-1",
        "sim:fault=explode",
        "sim:after=2",
        "sim:times=2",
        "sim:keepalive=yes",
        "sim:stamp=2",
        "sim:tokens",
    ],
)
async def test_directive_unknown_or_bad_returns_400(http: httpx.AsyncClient, word: str) -> None:
    response = await http.post("/chat/completions", json=chat(f"Typo {word}"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert word in error["message"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "messages",
        "invalid_directive",
    )
    assert "data:" not in response.text


@pytest.mark.asyncio
async def test_directives_in_earlier_messages_are_ignored(http: httpx.AsyncClient) -> None:
    body = chat("Now answer")
    body["messages"][:0] = [
        {"role": "user", "content": "sim:status=500"},
        {"role": "assistant", "content": "sim:fault=drop"},
    ]
    async with http.stream("POST", "/chat/completions", json=body) as response:
        raw = (await response.aread()).decode()
    assert response.status_code == 200
    assert data_of(raw)[-1] == "[DONE]"


@pytest.mark.asyncio
async def test_auth_without_key_returns_401() -> None:
    async with Simulator(rate=0, api_key=API_KEY) as sim:
        async with httpx.AsyncClient(base_url=sim.base_url) as client:
            missing = await client.post("/chat/completions", json=chat("Hi"))
            wrong = await client.post(
                "/chat/completions", json=chat("Hi"), headers={"Authorization": "Bearer nope"}
            )
            models = await client.get("/models")
        records = sim.requests
    expected = {
        "error": {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert (missing.status_code, missing.json()) == (401, expected)
    assert (wrong.status_code, wrong.json()) == (401, expected)
    assert models.status_code == 401
    assert [r["headers"] for r in records] == [
        {"authorization": "absent"},
        {"authorization": "present"},
    ]


@pytest.mark.asyncio
async def test_auth_with_right_key_streams() -> None:
    async with Simulator(rate=0, tokens=5, api_key=API_KEY) as sim:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=sim.base_url, headers=headers) as client:
            status, raw = await post_stream(client, "Hi")
            listing = await client.get("/_simulator/requests")
        records = sim.requests
    assert status == 200
    assert len(content_of(chunks_of(raw))) == 5
    assert records[0]["headers"] == {"authorization": "present"}
    assert API_KEY not in json.dumps(records)
    assert API_KEY not in listing.text


@pytest.mark.asyncio
async def test_non_stream_returns_chat_completion(http: httpx.AsyncClient) -> None:
    response = await http.post("/chat/completions", json=chat("Hello", stream=False))
    _, raw = await post_stream(http, "Hello")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-sim")
    assert completion["model"] == "test-model"
    [choice] = completion["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "".join(content_of(chunks_of(raw))),
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    assert completion["usage"] == {"prompt_tokens": 4, "completion_tokens": 20, "total_tokens": 24}


@pytest.mark.asyncio
async def test_non_stream_max_tokens_finish_reason_length(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/chat/completions", json=chat("Hello", stream=False, max_completion_tokens=3)
    )
    assert response.json()["choices"][0]["finish_reason"] == "length"
    assert response.json()["usage"]["completion_tokens"] == 3


@pytest.mark.asyncio
async def test_models_lists_the_model(http: httpx.AsyncClient) -> None:
    response = await http.get("/models")
    assert response.status_code == 200
    [model] = response.json()["data"]
    assert response.json()["object"] == "list"
    assert (model["id"], model["object"], model["owned_by"]) == (
        "simulated",
        "model",
        "chatsite-simulator",
    )
    assert isinstance(model["created"], int)


@pytest.mark.asyncio
async def test_routes_without_v1_prefix_work(server: Simulator) -> None:
    base = server.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=base) as client:
        models = await client.get("/models")
        status, raw = await post_stream(client, "No prefix")
    assert models.status_code == 200
    assert status == 200
    assert data_of(raw)[-1] == "[DONE]"


@pytest.mark.asyncio
async def test_requests_endpoint_records_and_clears(
    http: httpx.AsyncClient, server: Simulator
) -> None:
    await post_stream(http, "First")
    await http.post("/chat/completions", json=chat("Second", stream=False))
    root = server.base_url.removesuffix("/v1")
    listing = await http.get(f"{root}/_simulator/requests")
    assert listing.json() == {
        "requests": [
            {
                "model": "test-model",
                "messages": [{"role": "user", "content": "First"}],
                "stream": True,
                "max_tokens": None,
                "max_completion_tokens": None,
                "headers": {"authorization": "absent"},
            },
            {
                "model": "test-model",
                "messages": [{"role": "user", "content": "Second"}],
                "stream": False,
                "max_tokens": None,
                "max_completion_tokens": None,
                "headers": {"authorization": "absent"},
            },
        ]
    }
    assert server.requests == listing.json()["requests"]
    cleared = await http.delete(f"{root}/_simulator/requests")
    assert cleared.status_code == 200
    assert server.requests == []
    assert (await http.get(f"{root}/_simulator/requests")).json() == {"requests": []}


@pytest.mark.asyncio
async def test_requests_endpoint_does_not_record_other_routes(
    http: httpx.AsyncClient, server: Simulator
) -> None:
    await http.get("/models")
    await http.post("/chat/completions", content=b"{not json")
    assert server.requests == []


@pytest.mark.asyncio
async def test_chat_invalid_json_returns_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "m", "stream": True}, "missing_required_parameter"),
        ({"model": "m", "messages": [], "stream": True}, "empty_array"),
        ({"model": "m", "messages": "hi"}, "invalid_type"),
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, None),
    ],
)
async def test_chat_invalid_body_returns_400(
    http: httpx.AsyncClient, body: dict[str, Any], code: str | None
) -> None:
    response = await http.post("/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if code is not None:
        assert error["code"] == code
    assert "choices" not in response.text


@pytest.mark.asyncio
async def test_unknown_route_returns_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/embeddings")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "Invalid URL (GET /v1/embeddings)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


async def raw_exchange(server: Simulator, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection; return everything until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return reply


@pytest.mark.asyncio
async def test_request_chunked_body_returns_411(server: Simulator) -> None:
    reply = await raw_exchange(
        server,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 411 ")
    assert b'"type":"invalid_request_error"' in reply
    assert server.requests == []


@pytest.mark.asyncio
async def test_request_body_over_max_body_returns_413(server: Simulator) -> None:
    reply = await raw_exchange(
        server,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        % (MAX_BODY + 1),
    )
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in reply
    assert server.requests == []


@pytest.mark.asyncio
async def test_http10_stream_is_not_chunked_and_closes(server: Simulator) -> None:
    body = json.dumps(chat("Old client sim:tokens=2")).encode()
    reply = await raw_exchange(
        server,
        b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body),
    )
    head, _, stream = reply.decode().partition("\r\n\r\n")
    assert "Connection: close" in head
    assert "Transfer-Encoding" not in head
    assert len(content_of(chunks_of(stream))) == 2
    assert stream.endswith("data: [DONE]\n\n")


@pytest.mark.asyncio
async def test_keep_alive_reuses_one_connection(http: httpx.AsyncClient, server: Simulator) -> None:
    await post_stream(http, "One")
    await http.post("/chat/completions", json=chat("Two", stream=False))
    await http.get("/models")
    assert server.connection_count == 1


@pytest.mark.asyncio
async def test_connection_close_header_closes_connection(
    http: httpx.AsyncClient, server: Simulator
) -> None:
    response = await http.get("/models", headers={"Connection": "close"})
    assert response.headers["connection"] == "close"
    await http.get("/models")
    assert server.connection_count == 2


@pytest.mark.asyncio
async def test_close_ends_stalled_stream_promptly() -> None:
    sim = Simulator(rate=0)
    await sim.start()
    received = bytearray()
    client = httpx.AsyncClient(base_url=sim.base_url, timeout=30)
    consumer = asyncio.create_task(collect(client, "Hang sim:fault=stall sim:after=1", received))
    for _ in range(500):
        if b'"content":"You"' in received:
            break
        await asyncio.sleep(0.01)
    assert len(content_of(chunks_of(received.decode()))) == 1
    started = time.monotonic()
    await asyncio.wait_for(sim.close(), 2)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await asyncio.wait_for(consumer, 2)
    assert time.monotonic() - started < 1
    await client.aclose()
    assert sim.open_connections == 0


def test_simulator_thread_serves_sync_clients() -> None:
    with SimulatorThread(rate=0, tokens=4) as sim:
        response = httpx.post(f"{sim.base_url}/chat/completions", json=chat("Sync"), timeout=5)
        records = sim.requests
    assert response.status_code == 200
    assert len(content_of(chunks_of(response.text))) == 4
    assert len(records) == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.base_url}/models", timeout=1)


@pytest.mark.asyncio
async def test_cli_prints_url_serves_and_exits_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "streaming.simulator", "--port", "0", "--rate", "0", "--api-key", API_KEY),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        base_url = line.split()[-1]
        assert base_url.endswith("/v1")
        assert not base_url.endswith(":0/v1")
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
            status, raw = await post_stream(client, "Over the wire sim:tokens=3")
        assert status == 200
        assert len(content_of(chunks_of(raw))) == 3
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    log = stderr.decode()
    assert "POST /v1/chat/completions 200 sim:tokens=3" in log
    assert API_KEY not in log
    assert "Traceback" not in log


def test_models_lists_the_ids_it_is_given() -> None:
    with SimulatorThread(rate=0, models=["sim-large", "sim-small"]) as sim:
        listed = httpx.get(f"{sim.base_url}/models", timeout=5).json()
    assert listed["object"] == "list"
    assert [(m["id"], m["object"]) for m in listed["data"]] == [
        ("sim-large", "model"),
        ("sim-small", "model"),
    ]


@pytest.mark.asyncio
async def test_cli_lists_the_models_of_simulator_models() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "SIMULATOR_MODELS": "a-1, b-2"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "streaming.simulator", "--port", "0"),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        base_url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().split()[-1]
        async with httpx.AsyncClient(base_url=base_url) as client:
            listed = (await client.get("/models")).json()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert [m["id"] for m in listed["data"]] == ["a-1", "b-2"]
