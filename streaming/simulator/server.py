"""The simulator's server: routes, auth, and answers streamed with the faults a request asks for."""

import asyncio
import dataclasses
import hmac
import ipaddress
import json
import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Self, get_args

from .answer import Answer
from .directives import DirectiveError, Directives, TokenField, split_directives
from .payloads import (
    InvalidRequest,
    error_body,
    model_list,
    parse_chat_request,
    status_error,
)
from .wire import (
    ConnectionGone,
    Exchange,
    HTTPError,
    Request,
    json_bytes,
    read_request,
    send_body,
)

logger = logging.getLogger(__name__)

MAX_RECORDED = 1000
# Requests carrying images are large: the oldest recorded go first past this many bytes.
MAX_RECORDED_BYTES = 256 * 1024 * 1024


class Simulator:
    """An OpenAI-compatible Chat Completions server: deterministic, with faults on request.

    Use it as an async context manager (or call start() and close()); `base_url` is what an
    OpenAI client needs. Directives in the last user message (`sim:tokens=5`, `sim:fault=drop`,
    ...) choose the answer's length, pace and failures; see the package docstring.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float = 50.0,
        tokens: int = 60,
        api_key: str | None = None,
        model: str = "simulated",
        models: Sequence[str] | None = None,
    ) -> None:
        if rate < 0 or tokens < 0:
            raise ValueError("rate and tokens must not be negative")
        #: What GET /v1/models lists (it answers as whatever model a request names).
        self.models = list(models) if models else [model]
        self.host = host
        self.rate = rate
        self.tokens = tokens
        self.api_key = api_key
        self.model = model
        self._port = port
        self._server: asyncio.Server | None = None
        self._closing = False
        self._open: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._connection_count = 0
        # The thread runner reads these from another thread, hence the lock.
        self._lock = threading.Lock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED)
        self._request_sizes: deque[int] = deque(maxlen=MAX_RECORDED)
        self._failures: dict[str, int] = {}

    async def start(self) -> None:
        """Bind and start serving; with port 0 the OS picks a free port."""
        self._server = await asyncio.start_server(self._serve_connection, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop accepting and cut every open connection, stalled streams included, at once."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task, writer in list(self._open.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._open, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The port served on (the bound one once started)."""
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of this server, e.g. "http://127.0.0.1:8001/v1"."""
        return f"http://{_url_host(self.host)}:{self._port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Chat completion requests received, oldest first (the last 1000, and no more than
        MAX_RECORDED_BYTES of them), each message's content as sent: a string, or its parts,
        images' data: URLs whole."""
        with self._lock:
            return list(self._requests)

    @property
    def connection_count(self) -> int:
        """TCP connections accepted since start; a pooled client reuses one."""
        return self._connection_count

    @property
    def open_connections(self) -> int:
        """TCP connections open right now; a stream whose client left is no longer counted."""
        return len(self._open)

    def clear_requests(self) -> None:
        """Forget recorded requests and the `sim:times` counts, for a fresh start."""
        with self._lock:
            self._requests.clear()
            self._request_sizes.clear()
            self._failures.clear()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if self._closing or task is None:
            writer.transport.abort()
            return
        self._open[task] = writer
        self._connection_count += 1
        try:
            while True:
                try:
                    request = await read_request(reader, writer)
                except HTTPError as exc:
                    body = json_bytes(error_body(exc.message, "invalid_request_error"))
                    await send_body(writer, exc.status, body, keep_alive=False)
                    logger.info("- - %s %s", exc.status, exc.message)
                    break
                if request is None:
                    break
                exchange = Exchange(request, reader, writer)
                try:
                    await self._respond(exchange)
                except ConnectionGone as exc:
                    reason = "simulator closing" if self._closing else exc
                    logger.info("%s", exchange.log_line(f"(ended early: {reason})"))
                    raise
                logger.info("%s", exchange.log_line())
                if not exchange.keep_alive:
                    break
        except ConnectionGone:
            pass
        except asyncio.CancelledError:
            # Only close() cancels us, and the task ends here anyway; letting the cancellation
            # out would make Python 3.11's StreamReaderProtocol log it as an error.
            pass
        finally:
            del self._open[task]
            writer.close()

    async def _respond(self, ex: Exchange) -> None:
        path = ex.request.path
        # Accept both base URLs, http://host:port/v1 and http://host:port.
        if path == "/v1" or path.startswith("/v1/"):
            path = path[3:]
        route = (ex.request.method, path)
        try:
            if route == ("POST", "/chat/completions"):
                await self._chat_completions(ex)
            elif route == ("GET", "/models"):
                if await self._check_key(ex):
                    await ex.send_json(200, model_list(self.models))
            elif route == ("GET", "/_simulator/requests"):
                await ex.send_json(200, {"requests": self.requests})
            elif route == ("DELETE", "/_simulator/requests"):
                self.clear_requests()
                await ex.send_json(200, {"requests": []})
            else:
                message = f"Invalid URL ({ex.request.method} {ex.request.path})"
                await ex.send_json(404, error_body(message, "invalid_request_error"))
        except ConnectionGone:
            raise
        except Exception:
            logger.exception("simulator failed on %s %s", ex.request.method, ex.request.path)
            if ex.status is not None:
                # Half a response cannot be taken back; cut it so the client sees a failure.
                ex.drop("simulator error mid-response")
            await ex.send_json(500, status_error(500, self.model))

    async def _check_key(self, ex: Exchange) -> bool:
        """Whether the request may proceed; if not, the 401 OpenAI sends has been answered."""
        if self.api_key is None:
            return True
        scheme, _, key = ex.request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(key.strip(), self.api_key):
            return True
        await ex.send_json(401, status_error(401, self.model))
        return False

    async def _chat_completions(self, ex: Exchange) -> None:
        try:
            body: Any = json.loads(ex.request.body)
        except ValueError:
            body = None
        if isinstance(body, dict):
            # Recorded before the auth check: a refused call is still a call upstream.
            self._record(body, ex.request)
        if not await self._check_key(ex):
            return
        if body is None:
            message = "We could not parse the JSON body of your request."
            return await ex.send_json(400, error_body(message, "invalid_request_error"))
        try:
            chat = parse_chat_request(body, self.model)
            prompt, directives = split_directives(chat.last_user_text)
        except InvalidRequest as exc:
            ex.summary = exc.message
            error = error_body(exc.message, "invalid_request_error", param=exc.param, code=exc.code)
            return await ex.send_json(400, error)
        except DirectiveError as exc:
            ex.summary = str(exc)
            error = error_body(
                str(exc), "invalid_request_error", param="messages", code="invalid_directive"
            )
            return await ex.send_json(400, error)
        ex.summary = directives.summary
        if directives.echokey:
            key = ex.request.headers.get("authorization", "").partition(" ")[2].strip()
            chat = dataclasses.replace(chat, model=key or chat.model)

        if directives.refuse is not None and directives.refuse in body:
            other = next(f for f in get_args(TokenField) if f != directives.refuse)
            message = (
                f"Unsupported parameter: '{directives.refuse}' is not supported with this "
                f"model. Use '{other}' instead."
            )
            error = error_body(
                message,
                "invalid_request_error",
                param=directives.refuse,
                code="unsupported_parameter",
            )
            return await ex.send_json(400, error)
        if directives.status is not None and self._should_fail(chat.last_user_text, directives):
            headers = []
            if directives.retry_after is not None:
                headers.append(("Retry-After", str(directives.retry_after)))
            return await ex.send_json(
                directives.status, status_error(directives.status, chat.model), headers
            )

        answer = Answer(
            chat, prompt, directives, default_tokens=self.tokens, default_rate=self.rate
        )
        if chat.stream:
            await answer.stream(ex)
        else:
            await answer.complete(ex)

    def _record(self, body: dict[str, Any], request: Request) -> None:
        authorization = "present" if "authorization" in request.headers else "absent"
        # Extra headers a provider was configured with (X-…), as sent: never the key.
        extra = {name: value for name, value in request.headers.items() if name.startswith("x-")}
        record = {
            "model": body.get("model"),
            "messages": body.get("messages"),
            "stream": body.get("stream", False),
            "max_tokens": body.get("max_tokens"),
            "max_completion_tokens": body.get("max_completion_tokens"),
            "headers": {"authorization": authorization, **extra},
        }
        with self._lock:
            self._requests.append(record)
            self._request_sizes.append(len(request.body))
            while sum(self._request_sizes) > MAX_RECORDED_BYTES and len(self._requests) > 1:
                self._requests.popleft()
                self._request_sizes.popleft()

    def _should_fail(self, message: str, directives: Directives) -> bool:
        """Whether this request gets the `sim:status` reply; `sim:times` counts per message."""
        if directives.times is None:
            return True
        with self._lock:
            failures = self._failures.get(message, 0)
            if failures >= directives.times:
                return False
            self._failures[message] = failures + 1
            return True


def _url_host(host: str) -> str:
    # A wildcard address is not somewhere a client can connect to; loopback is.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = False
    return f"[{host}]" if is_v6 else host
