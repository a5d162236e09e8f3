"""An httpx transport on aiohttp that keeps httpcore's contract, so code calling httpx
cannot tell them apart but by the CPU it costs (about half per chunk read), and the client
the runtime reads the model's streams with (``api_client``: on it unless OPENAI_HTTP says
httpcore, or the environment names a proxy, which only httpx's own transport reads).
docs/performance.md, "A faster HTTP path for the model's streams", has the figures.

Where httpx-aiohttp 0.2.0 differs from httpcore, this one does not: errors are mapped by
what failed (a refused connection is a ConnectError, not a ConnectTimeout); credentials in
the URL go only as the header httpx made of them (aiohttp refuses both at once); the pool
limit is a semaphore with its own wait (PoolTimeout), so the connect timeout covers
connecting only; idle connections beyond ``max_keepalive_connections`` are closed, oldest
first.
"""

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import httpx
from aiohttp import client_exceptions as errors
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey
from django.conf import settings

_DEFAULT_LIMITS = httpx.Limits()

# Most specific first: the first match decides.
_ERRORS: list[tuple[type[BaseException], type[httpx.TransportError]]] = [
    (errors.ConnectionTimeoutError, httpx.ConnectTimeout),
    (errors.SocketTimeoutError, httpx.ReadTimeout),
    (errors.ServerTimeoutError, httpx.ReadTimeout),
    (errors.ClientConnectorError, httpx.ConnectError),
    (errors.ServerDisconnectedError, httpx.RemoteProtocolError),
    (errors.ClientPayloadError, httpx.RemoteProtocolError),
    (errors.ClientResponseError, httpx.RemoteProtocolError),
    (errors.InvalidURL, httpx.UnsupportedProtocol),
    (errors.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (errors.ClientOSError, httpx.ReadError),
    (errors.ClientError, httpx.TransportError),
]


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except errors.ClientError as exc:
        kind = next(to for source, to in _ERRORS if isinstance(exc, source))
        raise kind(str(exc)) from exc


class _Connector(aiohttp.TCPConnector):
    """Keeps at most ``keepalive`` idle connections, closing the oldest beyond them, as
    httpcore's ``max_keepalive_connections`` does. aiohttp's pool has no such bound, so this
    overrides its private ``_release`` and reads its ``_conns``: aiohttp is pinned, and
    test_aiohttp_transport.py fails if a new version changes them."""

    def __init__(self, keepalive: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._keepalive = keepalive

    def _release(
        self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False
    ) -> None:
        super()._release(key, protocol, should_close=should_close)
        if self._keepalive is None:
            return
        idle = [(since, held) for held, conns in self._conns.items() for _, since in conns]
        for _, oldest_key in sorted(idle)[: max(0, len(idle) - self._keepalive)]:
            oldest, _ = self._conns[oldest_key].popleft()
            oldest.close()
            if not self._conns[oldest_key]:
                del self._conns[oldest_key]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over aiohttp, with httpcore's timeouts, limits and errors."""

    def __init__(
        self, limits: httpx.Limits = _DEFAULT_LIMITS, verify: bool = True, trust_env: bool = True
    ) -> None:
        self._limits = limits
        self._ssl = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
        self._slots = asyncio.Semaphore(limits.max_connections or 1)
        self._bounded = limits.max_connections is not None
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pooled connection; the response's body streams."""
        timeout = request.extensions.get("timeout", {})
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=_Connector(
                    self._limits.max_keepalive_connections,
                    limit=0,  # the semaphore is the limit, so aiohttp never waits in its pool
                    keepalive_timeout=self._limits.keepalive_expiry,
                    ssl=self._ssl,
                ),
                auto_decompress=False,  # httpx decodes
                # The headers sent are httpx's, none of aiohttp's own defaults.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        if self._bounded:
            try:
                async with asyncio.timeout(timeout.get("pool")):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("No free connection in the pool.") from None
        try:
            with _mapped():
                response = await self._session.request(
                    request.method,
                    # httpx already made the URL's credentials an Authorization header.
                    str(request.url.copy_with(username=None, password=None)),
                    headers=request.headers.multi_items(),
                    data=await request.aread() or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        connect=timeout.get("connect"),
                        sock_connect=timeout.get("connect"),
                        sock_read=timeout.get("read"),
                    ),
                )
        except BaseException:
            self._free()
            raise
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, self._free),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode(),
            },
        )

    def _free(self) -> None:
        if self._bounded:
            self._slots.release()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Body(httpx.AsyncByteStream):
    """A response's body; closing it gives its connection and its slot back."""

    def __init__(self, response: aiohttp.ClientResponse, free: Callable[[], None]) -> None:
        self._response = response
        self._free = free
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            # What each network read brought: one token's chunk, or several under load.
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # Back to the pool when read to the end, closed otherwise (as httpcore does).
            self._response.release()
            self._free()


def api_client(limits: httpx.Limits, headers: dict[str, str]) -> httpx.AsyncClient:
    """The client the runtime asks the model APIs with: on ``AiohttpTransport`` unless
    OPENAI_HTTP is httpcore or the environment names a proxy (HTTP_PROXY, HTTPS_PROXY,
    ALL_PROXY, in either case): httpx honours those, and NO_PROXY, only on its own
    transport, so a server that reaches its API through one keeps it."""
    if transport_name() == "aiohttp":
        transport = AiohttpTransport(limits=limits)
        return httpx.AsyncClient(limits=limits, headers=headers, transport=transport)
    return httpx.AsyncClient(limits=limits, headers=headers)


def transport_name() -> str:
    """Which transport ``api_client`` gives: "aiohttp", or "httpcore" (setting, proxy)."""
    proxied = {"http", "https", "all"} & set(urllib.request.getproxies())
    return "aiohttp" if settings.OPENAI_HTTP == "aiohttp" and not proxied else "httpcore"
