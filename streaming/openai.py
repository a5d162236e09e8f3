"""Stream one Chat Completions request and yield what the model says, as typed events.

Knows HTTP and the OpenAI wire format (as OpenAI, Azure, OpenRouter, Ollama, vLLM, llama.cpp
and LM Studio speak it); knows nothing of Django. The caller passes the shared
``httpx.AsyncClient`` in, so tests can give it a transport instead of patching.
A provider's ``/models``, read for the admin, is streaming/model_list.py's.
"""

import asyncio
import email.utils
import http
import json
import logging
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from streaming.exceptions import (
    UpstreamBusy,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamStreamError,
    UpstreamTimeout,
)
from streaming.sse import SSEDecoder

logger = logging.getLogger(__name__)

# A user name in the API's URL this long may be a token (https://TOKEN@host), so is secret.
_TOKEN_LIKE_LENGTH = 8

# The most of a provider's own error message kept (its error object's "message"…).
MAX_ERROR_TEXT = 500


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One thing the model's stream said."""

    type: Literal["text", "reasoning", "finish", "usage"]
    #: The new piece of answer (``text``) or of thinking (``reasoning``).
    text: str = ""
    #: Why the model stopped (``finish``): "stop", "length", "content_filter", "tool_calls"…
    finish_reason: str = ""
    #: Tokens of the request (``usage``).
    prompt_tokens: int = 0
    #: Tokens of the answer (``usage``).
    completion_tokens: int = 0
    #: The model that answered, as the API named it in this chunk ("" if it did not).
    model: str = ""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Everything one streamed Chat Completions call needs."""

    #: The API root, e.g. "https://api.openai.com/v1"; "/chat/completions" is appended.
    base_url: str
    #: Sent as a Bearer token when set; never appears in an error.
    api_key: str = field(repr=False)
    #: The model name the API expects.
    model: str
    #: The conversation so far, system prompt first: [{"role": ..., "content": ...}].
    messages: list[dict[str, str]]
    #: Seconds without a byte before the call fails with UpstreamTimeout.
    read_timeout: float = 60.0
    #: Seconds to establish the connection.
    connect_timeout: float = 10.0
    #: The most tokens the answer may have; None sends no limit.
    max_tokens: int | None = None
    #: The body field the limit goes in: "max_tokens" (most servers) or
    #: "max_completion_tokens" (OpenAI's newer models refuse the older name).
    max_tokens_field: str = "max_tokens"
    #: Extra headers the provider wants (OpenRouter's HTTP-Referer, a gateway's tenant…);
    #: never ones the client sets itself (``request_headers``).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


# Headers this client owns: an extra header with one of these names is dropped, so a
# provider's settings can never replace the key's Authorization or the wire format's.
OWN_HEADERS = frozenset(
    {"authorization", "accept", "content-type", "content-length", "host", "transfer-encoding"}
)


def request_headers(
    api_key: str, extra: Mapping[str, str], accept: str = "application/json"
) -> dict[str, str]:
    """The headers of a request to the API: the extra ones, then ours, which always win."""
    headers = {name: value for name, value in extra.items() if name.lower() not in OWN_HEADERS}
    headers["Accept"] = accept
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def other_token_field(error: UpstreamHTTPError, request: ChatRequest) -> str | None:
    """The other token-limit field, if ``error`` is the API refusing the one we sent."""
    if request.max_tokens is None or error.status_code not in (400, 422):
        return None
    sent = request.max_tokens_field
    if sent not in error.message:
        return None
    return next(field for field in TOKEN_FIELDS if field != sent)


# How long a request waits for one of the client's connections to come free. The runtime
# never starts more answers than it has connections, so a wait is rare and stays short.
_POOL_WAIT_SECONDS = 2.0


async def stream_chat(
    client: httpx.AsyncClient, request: ChatRequest
) -> AsyncGenerator[StreamEvent, None]:
    """POST the request with ``stream: true`` and yield its events until ``[DONE]`` or the end.

    Raises an ``UpstreamError`` child for every failure; events already yielded stay valid,
    so a caller that keeps them loses no text.
    """
    headers = request_headers(request.api_key, request.headers, "text/event-stream")
    body: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.max_tokens is not None:
        body[request.max_tokens_field] = request.max_tokens
    timeout = httpx.Timeout(
        request.read_timeout, connect=request.connect_timeout, pool=_POOL_WAIT_SECONDS
    )
    url = request.base_url.rstrip("/") + "/chat/completions"
    try:
        outgoing = client.build_request("POST", url, json=body, headers=headers, timeout=timeout)
        response = await _send(client, outgoing)
        try:
            if not response.is_success:
                raise await _http_error(response)
            content_type = response.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                # A server or proxy that ignored `stream: true` sent one whole completion.
                for event in _completion_events(_loads(await response.aread())):
                    yield event
                return
            async for event in _stream_events(response):
                yield event
        finally:
            await response.aclose()
    except UpstreamError as exc:
        exc.message = redact(exc.message, request)
        raise
    except httpx.TimeoutException as exc:
        if isinstance(exc, httpx.PoolTimeout):
            raise UpstreamBusy(
                "The server has no free connection to the model API right now. "
                "Try again in a moment."
            ) from None
        if isinstance(exc, httpx.ConnectTimeout):
            raise UpstreamConnectError(
                f"Could not connect to the model API within {request.connect_timeout:g} s."
            ) from None
        raise UpstreamTimeout(
            f"The model API sent nothing for {request.read_timeout:g} s, so the answer was stopped."
        ) from None
    except httpx.TransportError as exc:
        if isinstance(exc, httpx.ConnectError):
            # The address stays in the log: people see only that the API was unreachable.
            logger.warning("Could not connect to %s: %s", safe_url(request.base_url), exc)
            message = "Could not connect to the model API."
        else:
            message = "The connection to the model API broke before the answer was finished."
        raise UpstreamConnectError(message) from None


# Responses still opening when their caller was cancelled, until they are closed.
_closing: set["asyncio.Future[httpx.Response]"] = set()


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send ``request`` and return its response once the headers are in.

    A cancel that lands while httpcore is still opening the connection can leave that
    connection in the client's pool for good, socket and all (encode/httpcore#1093). So the
    send itself is never cancelled: a cancelled caller lets it finish in the background,
    within the request's own timeouts, and the response is closed as soon as it arrives.
    """
    sending = asyncio.ensure_future(client.send(request, stream=True))
    try:
        return await asyncio.shield(sending)
    except asyncio.CancelledError:
        _closing.add(sending)
        sending.add_done_callback(_close_abandoned)
        raise


def _close_abandoned(sending: "asyncio.Future[httpx.Response]") -> None:
    if sending.cancelled() or sending.exception() is not None:
        _closing.discard(sending)
        return
    closing = asyncio.ensure_future(sending.result().aclose())
    closing.add_done_callback(lambda _: _closing.discard(sending))


async def _stream_events(response: httpx.Response) -> AsyncGenerator[StreamEvent, None]:
    """Feed the body to the SSE decoder and turn each chunk into events."""
    decoder = SSEDecoder()
    finished = False
    async for raw in response.aiter_bytes():
        for sse in decoder.feed(raw):
            if sse.data == "[DONE]":
                return
            if sse.event == "error":
                raise UpstreamStreamError(
                    _provider_message(try_loads(sse.data), "The model API reported an error.")
                )
            for event in _chunk_events(_loads(sse.data)):
                finished = finished or event.type == "finish"
                yield event
    decoder.close()
    if not finished:
        raise UpstreamConnectError(
            "The model API closed the stream before the answer was finished."
        )


def _chunk_events(chunk: Any) -> Iterator[StreamEvent]:
    """The events in one ``chat.completion.chunk`` (first choice only; we ask for one)."""
    if not isinstance(chunk, dict):
        raise UpstreamProtocolError("The model API sent a chunk that is not a JSON object.")
    if chunk.get("error"):
        raise UpstreamStreamError(_provider_message(chunk, "The model API reported an error."))
    model = chunk["model"] if isinstance(chunk.get("model"), str) else ""
    # Azure's prompt-filter chunk and the final usage chunk have no choices at all.
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        # DeepSeek and vLLM say reasoning_content, OpenRouter and Ollama say reasoning.
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield StreamEvent("reasoning", text=reasoning, model=model)
        content = delta.get("content")
        if isinstance(content, str) and content:
            yield StreamEvent("text", text=content, model=model)
        if choice.get("finish_reason"):
            yield StreamEvent("finish", finish_reason=str(choice["finish_reason"]), model=model)
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        yield StreamEvent(
            "usage",
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            model=model,
        )


def _completion_events(completion: Any) -> Iterator[StreamEvent]:
    """The events of a whole (non-streamed) ``chat.completion`` object."""
    if not isinstance(completion, dict):
        raise UpstreamProtocolError("The model API sent a reply that is not a JSON object.")
    choices = [
        {
            "index": c.get("index", 0),
            "delta": c.get("message") or {},
            "finish_reason": c.get("finish_reason") or "stop",
        }
        for c in completion.get("choices") or []
        if isinstance(c, dict)
    ]
    yield from _chunk_events({**completion, "choices": choices})


async def _http_error(response: httpx.Response) -> UpstreamHTTPError:
    """An error carrying the provider's own message for a non-2xx reply, or only its
    status when the body holds none (a page of HTML, or whatever a wrong URL answers)."""
    body = (await response.aread()).decode("utf-8", errors="replace")
    return UpstreamHTTPError(
        response.status_code,
        _provider_message(try_loads(body), status_words(response.status_code)),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def _provider_message(payload: Any, fallback: str) -> str:
    """The human message in an error body, in any of the shapes providers use; else
    ``fallback``. Nothing else of a body is ever quoted: a base URL pointing at some
    internal page must not turn a person's error message into a window on it."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, str) and error:
            return error[:MAX_ERROR_TEXT]  # Ollama, llama.cpp: {"error": "model 'x' not found"}
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if isinstance(error.get(key), str) and error[key]:
                    return str(error[key])[:MAX_ERROR_TEXT]
    return fallback


def status_words(status_code: int) -> str:
    """An HTTP status as its standard words ("HTTP 404 Not Found"); never the reason
    phrase the server sent, which is its own text."""
    try:
        return f"HTTP {status_code} {http.HTTPStatus(status_code).phrase}"
    except ValueError:
        return f"HTTP {status_code}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _loads(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        # Not quoted: it may be anything the URL answers (see ``_provider_message``).
        raise UpstreamProtocolError("The model API sent data that is not valid JSON.") from None


def try_loads(data: str) -> Any:
    """``data`` read as JSON, or None when it is not."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def redact(text: str, request: ChatRequest) -> str:
    """``text`` from the provider without the secrets ``request`` was sent with.

    Some providers echo the key they were given, or the URL they were called at; text from
    them (errors, model names, finish reasons) passes through here before it is stored,
    shown or logged. The key and the URL's password go whatever their length; a user name
    in the URL only when it is long enough to be a token rather than a name.
    """
    for secret in _secrets(request):
        text = text.replace(secret, "[redacted]")
    return text


def _secrets(request: ChatRequest) -> list[str]:
    parts = urlsplit(request.base_url)
    found = [request.api_key, parts.password or ""]
    if parts.username and len(parts.username) >= _TOKEN_LIKE_LENGTH:
        found.append(parts.username)
    # An extra header may carry a credential too (a gateway's key): its value, if long enough.
    found += [value for value in request.headers.values() if len(value) >= _TOKEN_LIKE_LENGTH]
    # Also as the URL spells them: a password with "@" or "/" in it is %-encoded there.
    found += [unquote(secret) for secret in found]
    # Longest first, so a secret that contains another is taken out whole.
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def safe_url(url: str) -> str:
    """``url`` without the user name and password in it, for logs and start-up messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc))
