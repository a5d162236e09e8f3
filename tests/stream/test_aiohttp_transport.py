"""The aiohttp transport keeps httpcore's contract, over real sockets: each of these but
the connect timeout's fails with httpx-aiohttp 0.2.0's transport."""

import asyncio
from typing import Any

import httpx
import pytest

from streaming.aiohttp_transport import AiohttpTransport, api_client, transport_name
from streaming.simulator import Simulator
from tests.support.servers import free_port
from tests.support.waiting import until


def client(**limits: int) -> httpx.AsyncClient:
    pool = httpx.Limits(**limits)
    return httpx.AsyncClient(transport=AiohttpTransport(limits=pool), limits=pool)


async def test_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/")


async def test_credentials_in_the_url_go_as_basic_auth() -> None:
    async with Simulator(rate=0, tokens=2) as sim, client() as http:
        url = sim.base_url.replace("http://", "http://user:secret@") + "/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        reply = await http.post(url, json=body)
        assert reply.status_code == 200
        assert sim.requests[-1]["headers"]["authorization"] == "present"


async def test_full_pool_is_a_pool_timeout_within_the_pool_wait() -> None:
    async with Simulator(rate=1, tokens=100) as sim, client(max_connections=1) as http:
        url = sim.base_url + "/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
        async with http.stream("POST", url, json=body):
            timeout = httpx.Timeout(30, connect=30, pool=0.2)
            with pytest.raises(httpx.PoolTimeout):
                await http.post(url, json=body, timeout=timeout)
        # The slot is free again once the first response is closed.
        quick = [{"role": "user", "content": "x sim:tokens=1 sim:rate=0"}]
        reply = await http.post(url, json={**body, "messages": quick, "stream": False})
        assert reply.status_code == 200


async def test_connect_timeout_is_not_spent_waiting_for_the_pool() -> None:
    """A request that waits for a slot longer than its connect timeout still connects."""
    async with Simulator(rate=20, tokens=20) as sim, client(max_connections=1) as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
        # Holds the one connection for the whole answer: 20 tokens at 20 a second.
        first = asyncio.create_task(http.post(sim.base_url + "/chat/completions", json=body))
        await until(lambda: sim.open_connections == 1, timeout=5)
        reply = await http.get(sim.base_url + "/models", timeout=httpx.Timeout(5, connect=0.3))
        assert reply.status_code == 200
        assert (await first).status_code == 200


async def test_idle_connections_beyond_max_keepalive_are_closed() -> None:
    async with Simulator(rate=0, tokens=2) as sim, client(max_keepalive_connections=2) as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        replies = await asyncio.gather(
            *(http.post(sim.base_url + "/chat/completions", json=body) for _ in range(6))
        )
        assert {reply.status_code for reply in replies} == {200}
        await until(lambda: sim.open_connections <= 2, timeout=5)
        assert sim.connection_count == 6


@pytest.mark.parametrize(
    ("setting", "environment", "chosen"),
    [
        ("aiohttp", {}, AiohttpTransport),
        ("aiohttp", {"NO_PROXY": "example.com"}, AiohttpTransport),  # names no proxy
        ("httpcore", {}, httpx.AsyncHTTPTransport),
        ("aiohttp", {"HTTPS_PROXY": "http://127.0.0.1:3128"}, httpx.AsyncHTTPTransport),
        ("aiohttp", {"http_proxy": "http://127.0.0.1:3128"}, httpx.AsyncHTTPTransport),
        ("aiohttp", {"ALL_PROXY": "http://127.0.0.1:3128"}, httpx.AsyncHTTPTransport),
    ],
)
async def test_the_runtime_reads_through_aiohttp_unless_told_or_behind_a_proxy(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    environment: dict[str, str],
    chosen: type,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings.OPENAI_HTTP = setting

    async with api_client(httpx.Limits(max_connections=3), {"User-Agent": "chatsite"}) as http:
        assert type(http._transport) is chosen
        # Behind a proxy, httpx's own transport mounts it, as it does for any client.
        proxied = any(k.endswith("PROXY") and k != "NO_PROXY" for k in map(str.upper, environment))
        assert bool(http._mounts) == proxied
        assert transport_name() == ("aiohttp" if chosen is AiohttpTransport else "httpcore")
