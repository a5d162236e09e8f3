"""The Chat Completions streaming client, against the simulator over real HTTP.

``httpx.MockTransport`` appears only for byte-level cases the simulator cannot produce.
"""

import asyncio
import contextlib
import json

import httpx
import pytest

from streaming.exceptions import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamStreamError,
    UpstreamTimeout,
)
from streaming.openai import (
    ChatRequest,
    StreamEvent,
    parse_retry_after,
    redact,
    safe_url,
    stream_chat,
)
from streaming.simulator import Simulator, SimulatorThread
from tests.support.servers import free_port
from tests.support.waiting import until


def chat(base_url: str, content: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(
        base_url=base_url,
        api_key=str(kwargs.pop("api_key", "")),
        model="simulated",
        messages=[{"role": "user", "content": content}],
        **kwargs,  # type: ignore[arg-type]
    )


async def collect(
    request: ChatRequest, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[list[StreamEvent], UpstreamError | None]:
    """Every event the stream yielded, and the error it ended with (if any)."""
    events: list[StreamEvent] = []
    async with httpx.AsyncClient(transport=transport) as client:
        try:
            async for event in stream_chat(client, request):
                events.append(event)
        except UpstreamError as exc:
            return events, exc
    return events, None


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if e.type == "text")


async def full_text(simulator: SimulatorThread, content: str) -> str:
    """The simulator's complete answer to ``content``, asked without streaming."""
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            f"{simulator.base_url}/chat/completions",
            json={"model": "simulated", "messages": [{"role": "user", "content": content}]},
        )
    return str(reply.json()["choices"][0]["message"]["content"])


async def test_stream_yields_text_finish_and_usage(simulator: SimulatorThread) -> None:
    events, error = await collect(chat(simulator.base_url, "Hello there sim:tokens=12"))

    assert error is None
    assert text_of(events) == await full_text(simulator, "Hello there sim:tokens=12")
    assert [e.finish_reason for e in events if e.type == "finish"] == ["stop"]
    usage = [e for e in events if e.type == "usage"]
    assert len(usage) == 1
    assert usage[0].completion_tokens == 12
    assert usage[0].prompt_tokens > 0
    assert all(e.model == "simulated" for e in events)


async def test_stream_request_asks_for_streaming_and_usage(simulator: SimulatorThread) -> None:
    marker = "request shape check sim:tokens=3"
    await collect(chat(simulator.base_url, marker))

    sent = [r for r in simulator.requests if r["messages"][-1]["content"] == marker]
    assert len(sent) == 1
    assert sent[0]["stream"] is True
    assert sent[0]["headers"]["authorization"] == "absent"


async def test_stream_sends_key_as_bearer_token() -> None:
    async with Simulator(api_key="sk-test-123", rate=0) as sim:
        events, error = await collect(chat(sim.base_url, "hi sim:tokens=3", api_key="sk-test-123"))
        assert error is None
        assert text_of(events)
        assert sim.requests[-1]["headers"]["authorization"] == "present"


async def test_stream_wrong_key_raises_http_error_without_the_key() -> None:
    async with Simulator(api_key="sk-right", rate=0) as sim:
        events, error = await collect(chat(sim.base_url, "hi", api_key="sk-wrong-secret"))

    assert events == []
    assert isinstance(error, UpstreamHTTPError)
    assert error.status_code == 401
    assert "Incorrect API key" in error.message
    assert "sk-wrong-secret" not in error.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 502, 503])
async def test_stream_status_before_stream_raises_with_provider_message(
    simulator: SimulatorThread, status: int
) -> None:
    events, error = await collect(chat(simulator.base_url, f"fail sim:status={status}"))

    assert events == []
    assert isinstance(error, UpstreamHTTPError)
    assert error.status_code == status
    assert error.message
    assert not error.message.startswith("{")


async def test_stream_429_carries_retry_after(simulator: SimulatorThread) -> None:
    _, error = await collect(chat(simulator.base_url, "slow down sim:status=429 sim:retry_after=7"))

    assert isinstance(error, UpstreamHTTPError)
    assert error.retry_after == 7.0


async def test_stream_error_event_keeps_text_before_it(simulator: SimulatorThread) -> None:
    events, error = await collect(chat(simulator.base_url, "x sim:fault=error sim:after=4"))

    assert isinstance(error, UpstreamStreamError)
    assert "server had an error" in error.message
    assert len([e for e in events if e.type == "text"]) == 4


async def test_stream_invalid_json_raises_protocol_error_after_text(
    simulator: SimulatorThread,
) -> None:
    events, error = await collect(chat(simulator.base_url, "x sim:fault=badjson sim:after=2"))

    assert isinstance(error, UpstreamProtocolError)
    assert len([e for e in events if e.type == "text"]) == 2


async def test_stream_dropped_connection_raises_connect_error_after_text(
    simulator: SimulatorThread,
) -> None:
    events, error = await collect(chat(simulator.base_url, "x sim:fault=drop sim:after=5"))

    assert isinstance(error, UpstreamConnectError)
    assert "broke" in error.message
    assert len([e for e in events if e.type == "text"]) == 5


async def test_stream_stall_past_read_timeout_raises_timeout_after_text(
    simulator: SimulatorThread,
) -> None:
    request = chat(simulator.base_url, "x sim:fault=stall sim:after=3", read_timeout=0.4)
    events, error = await collect(request)

    assert isinstance(error, UpstreamTimeout)
    assert "0.4 s" in error.message
    assert len([e for e in events if e.type == "text"]) == 3


async def test_stream_short_stall_within_timeout_completes(simulator: SimulatorThread) -> None:
    content = "x sim:fault=stall sim:after=2 sim:stall=0.2 sim:tokens=6"
    events, error = await collect(chat(simulator.base_url, content, read_timeout=3))

    assert error is None
    assert text_of(events) == await full_text(simulator, content)


async def test_stream_reasoning_is_kept_apart_from_text(simulator: SimulatorThread) -> None:
    content = "think first sim:reasoning=5 sim:tokens=6"
    events, error = await collect(chat(simulator.base_url, content))

    assert error is None
    reasoning = [e.text for e in events if e.type == "reasoning"]
    assert len(reasoning) == 5
    assert text_of(events) == await full_text(simulator, content)


@pytest.mark.parametrize("directive", ["sim:keepalive=1", "sim:azure=1", "sim:nodelta=1"])
async def test_stream_provider_quirks_give_the_plain_answer(
    simulator: SimulatorThread, directive: str
) -> None:
    content = f"quirks {directive} sim:tokens=8"
    events, error = await collect(chat(simulator.base_url, content))

    assert error is None
    assert text_of(events) == await full_text(simulator, content)
    assert [e.type for e in events].count("finish") == 1


async def test_stream_unreachable_server_raises_connect_error_naming_no_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    events, error = await collect(chat(f"http://apikey:hunter2-secret@{address}/v1", "anyone?"))

    assert events == []
    assert isinstance(error, UpstreamConnectError)
    assert error.message == "Could not connect to the model API."
    # The log says where, for whoever runs the server; never with the password.
    assert f"http://{address}/v1" in caplog.text
    assert "hunter2" not in caplog.text


# --- byte-level cases, with a mock transport --------------------------------------------


def sse_transport(body: bytes, status: int = 200, **headers: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            content=body,
            headers={"content-type": "text/event-stream", **headers},
        )

    return httpx.MockTransport(handler)


def chunk(**delta: object) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": None}
    return b"data: " + json.dumps({"choices": [choice], "model": "m"}).encode() + b"\n\n"


FINISH = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'


async def test_stream_end_without_finish_is_an_error_that_keeps_text() -> None:
    events, error = await collect(chat("http://api/v1", "x"), sse_transport(chunk(content="Hal")))

    assert text_of(events) == "Hal"
    assert isinstance(error, UpstreamConnectError)


async def test_stream_end_after_finish_without_done_is_complete() -> None:
    body = chunk(content="Hi") + FINISH
    events, error = await collect(chat("http://api/v1", "x"), sse_transport(body))

    assert error is None
    assert text_of(events) == "Hi"


async def test_stream_stops_reading_at_done() -> None:
    body = chunk(content="A") + FINISH + b"data: [DONE]\n\n" + chunk(content="after")
    events, _ = await collect(chat("http://api/v1", "x"), sse_transport(body))

    assert text_of(events) == "A"


async def test_stream_error_typed_event_raises_stream_error() -> None:
    body = chunk(content="A") + b'event: error\ndata: {"message": "overloaded"}\n\n'
    events, error = await collect(chat("http://api/v1", "x"), sse_transport(body))

    assert text_of(events) == "A"
    assert isinstance(error, UpstreamStreamError)
    assert error.message == "overloaded"


async def test_stream_reasoning_field_named_reasoning_is_kept_apart() -> None:
    body = chunk(reasoning="hmm") + chunk(content="Yes") + FINISH
    events, _ = await collect(chat("http://api/v1", "x"), sse_transport(body))

    assert [e.text for e in events if e.type == "reasoning"] == ["hmm"]
    assert text_of(events) == "Yes"


async def test_stream_json_reply_to_a_stream_request_is_accepted() -> None:
    completion = {
        "model": "m",
        "choices": [{"index": 0, "message": {"content": "Whole"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=completion))
    events, error = await collect(chat("http://api/v1", "x"), transport)

    assert error is None
    assert text_of(events) == "Whole"
    assert [e.completion_tokens for e in events if e.type == "usage"] == [1]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": "model \'llama9\' not found"}', "model 'llama9' not found"),
        (b'{"detail": "Not Found"}', "Not Found"),  # FastAPI-style servers (vLLM)
        (b'{"error": {"message": "Quota exceeded", "type": "x"}}', "Quota exceeded"),
        (b"", "HTTP 404 Not Found"),
        # A body in no provider's shape is never quoted: only the status is said.
        (b"<html>Bad gateway: secret-token-1234</html>", "HTTP 404 Not Found"),
        (b'{"data": "internal-secret-5678"}', "HTTP 404 Not Found"),
        (b"x" * 5000 + b"secret-tail", "HTTP 404 Not Found"),
    ],
)
async def test_stream_http_error_message_in_every_provider_shape(
    body: bytes, expected: str
) -> None:
    _, error = await collect(chat("http://api/v1", "x"), sse_transport(body, status=404))

    assert isinstance(error, UpstreamHTTPError)
    assert error.message == expected


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"data: internal-secret-5678 is not JSON\n\n", UpstreamProtocolError),
        (b"event: error\ndata: internal-secret-5678, not JSON\n\n", UpstreamStreamError),
    ],
    ids=["not json", "error event"],
)
async def test_stream_never_quotes_what_is_not_a_providers_message(
    body: bytes, kind: type[Exception]
) -> None:
    # A base URL pointing at some internal page streams whatever that page says.
    _, error = await collect(chat("http://api/v1", "x"), sse_transport(body))

    assert isinstance(error, kind)
    assert "internal-secret" not in error.message
    assert "JSON" in error.message or "reported an error" in error.message


async def test_stream_error_echoing_the_key_is_redacted() -> None:
    body = b'{"error": {"message": "Key sk-live-abc is revoked"}}'
    request = chat("http://api/v1", "x", api_key="sk-live-abc")
    _, error = await collect(request, sse_transport(body, status=401))

    assert isinstance(error, UpstreamHTTPError)
    assert "sk-live-abc" not in error.message
    assert "[redacted]" in error.message


def test_parse_retry_after_accepts_seconds_and_dates() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_stream_cancelled_at_any_early_step_leaves_no_connection_open() -> None:
    """A stop can land while the connection is still opening (encode/httpcore#1093)."""
    async with Simulator(tokens=5000, rate=50) as server, httpx.AsyncClient() as client:
        request = chat(server.base_url, "cancel me")
        for steps in range(40):

            async def read(request: ChatRequest = request) -> None:
                async for _ in stream_chat(client, request):
                    pass

            task = asyncio.create_task(read())
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await until(lambda: server.open_connections == 0, timeout=5)


# --- what providers send back, and our own messages, carry no secret ---------------------


def test_redact_takes_out_the_key_and_the_url_password_as_written_and_decoded() -> None:
    request = ChatRequest(
        base_url="https://tok3n-user-name:p%40ss%2Fword@llm.example/v1",
        api_key="sk-abc123",
        model="m",
        messages=[],
    )
    text = "bad key sk-abc123 for tok3n-user-name with p@ss/word (p%40ss%2Fword)"

    assert redact(text, request) == "bad key [redacted] for [redacted] with [redacted] ([redacted])"


def test_redact_leaves_a_short_user_name_which_is_a_name_not_a_token() -> None:
    request = ChatRequest(base_url="http://apikey:pw@host/v1", api_key="", model="m", messages=[])

    assert redact("Invalid apikey pw", request) == "Invalid apikey [redacted]"


def test_safe_url_drops_credentials_and_keeps_the_rest() -> None:
    assert safe_url("http://u:secret@[::1]:8080/v1?x=1") == "http://[::1]:8080/v1?x=1"
    assert safe_url("https://api.example/v1") == "https://api.example/v1"
