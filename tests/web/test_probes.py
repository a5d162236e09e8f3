"""/healthz, /readyz and /metrics of real daphne processes, with Redis and PostgreSQL going
away and coming back under them."""

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from tests.support.servers import DaphneServer, RedisServer, TcpForwarder, database_url_through
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

READY = {"database": "ok", "channel_layer": "ok"}
# Short, so a probe of something that hangs answers quickly.
FAST_PROBES = {"READY_TIMEOUT_SECONDS": "1"}
# The longest a probe may take while something hangs under it: READY_TIMEOUT_SECONDS and
# a generous margin. A bound on a hang (a probe that waits for the hung thing would take
# the 15 s the client allows, or more), not a claim about speed.
HUNG_PROBE_BOUND = 5.0


async def get(server: DaphneServer, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
        return await client.get(path, headers=headers, follow_redirects=False)


async def ready(server: DaphneServer) -> tuple[int, dict[str, Any]]:
    """/readyz's status and body; the body must be the small JSON object, nothing more."""
    response = await get(server, "/readyz")
    body = response.json()
    assert set(body) == {"database", "channel_layer"}, body
    assert set(body.values()) <= {"ok", "failed"}, body
    return response.status_code, body


async def timed_ready(server: DaphneServer) -> tuple[int, dict[str, Any]]:
    """``ready``, which must answer within HUNG_PROBE_BOUND."""
    started = time.monotonic()
    answer = await ready(server)
    elapsed = time.monotonic() - started
    assert elapsed < HUNG_PROBE_BOUND, f"/readyz took {elapsed:.1f} s"
    return answer


async def readyz_becomes(server: DaphneServer, status: int, body: dict[str, str]) -> None:
    async def check() -> bool:
        return await ready(server) == (status, body)

    await until(check, timeout=30, what=f"/readyz answering {status} {body}")


async def assert_healthy(server: DaphneServer) -> None:
    response = await get(server, "/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    assert response.headers["content-type"].startswith("text/plain")


def assert_says_nothing_of(response_text: str, *secrets: str) -> None:
    """A probe's body names no host, port, or error."""
    for secret in (*secrets, "127.0.0.1", "localhost", "Error", "refused", "Traceback"):
        assert secret not in response_text


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_readyz_follows_redis_going_and_coming_back(
    live_servers: Callable[..., list[DaphneServer]], own_redis: RedisServer, layer: str
) -> None:
    (server,) = live_servers(1, redis_url=own_redis.url, CHANNEL_LAYER=layer, **FAST_PROBES)
    await readyz_becomes(server, 200, READY)

    await sync_to_async(own_redis.kill)()
    await readyz_becomes(server, 503, {"database": "ok", "channel_layer": "failed"})
    await assert_healthy(server)
    response = await get(server, "/readyz")
    assert_says_nothing_of(response.text, str(own_redis.port), "redis")

    await sync_to_async(own_redis.start)()  # the same port, as a restarted Redis would be
    await readyz_becomes(server, 200, READY)
    await assert_healthy(server)
    assert server.process.poll() is None


async def test_readyz_fails_within_its_timeout_when_redis_hangs(
    live_servers: Callable[..., list[DaphneServer]], own_redis: RedisServer
) -> None:
    (server,) = live_servers(1, redis_url=own_redis.url, **FAST_PROBES)
    await readyz_becomes(server, 200, READY)

    own_redis.pause()  # connections stay open; nothing answers
    try:
        await readyz_becomes(server, 503, {"database": "ok", "channel_layer": "failed"})
        # Each probe gives up on its own: none waits behind a hung one.
        for _ in range(3):
            assert await timed_ready(server) == (
                503,
                {"database": "ok", "channel_layer": "failed"},
            )
        await assert_healthy(server)
    finally:
        own_redis.resume()
    await readyz_becomes(server, 200, READY)


def server_through(
    live_servers: Callable[..., list[DaphneServer]], forwarder: TcpForwarder, **extra: str
) -> DaphneServer:
    """A daphne process whose database connections all go through ``forwarder``."""
    through = database_url_through(connection.settings_dict, forwarder)
    (server,) = live_servers(1, DATABASE_URL=through, **FAST_PROBES, **extra)
    return server


async def test_readyz_follows_the_database_going_and_coming_back(
    live_servers: Callable[..., list[DaphneServer]], forwarder: TcpForwarder
) -> None:
    server = server_through(live_servers, forwarder)
    await readyz_becomes(server, 200, READY)

    await sync_to_async(forwarder.close)()  # connections cut, new ones refused
    await readyz_becomes(server, 503, {"database": "failed", "channel_layer": "ok"})
    await assert_healthy(server)
    response = await get(server, "/readyz")
    assert_says_nothing_of(
        response.text, str(forwarder.port), connection.settings_dict["NAME"], "postgres"
    )

    await sync_to_async(forwarder.open)()
    await readyz_becomes(server, 200, READY)
    await assert_healthy(server)


CHECK_STARTED = "Readiness: a database check started"
CHECK_TIMED_OUT = "Readiness: the database did not answer: TimeoutError()"


async def test_readyz_fails_within_its_timeout_when_the_database_hangs(
    live_servers: Callable[..., list[DaphneServer]], forwarder: TcpForwarder
) -> None:
    """A database that accepts connections and never answers: every probe answers after
    its own timeout, and probes meanwhile share the one check in flight."""
    server = server_through(live_servers, forwarder, LOG_LEVEL="DEBUG")
    await readyz_becomes(server, 200, READY)

    await sync_to_async(forwarder.hold)()
    await readyz_becomes(server, 503, {"database": "failed", "channel_layer": "ok"})
    # A check hangs now: a probe gave up waiting for it (broken pooled connections fail
    # at once instead).
    await until(lambda: CHECK_TIMED_OUT in server.log(), what="a probe timing out")
    started = server.log().count(CHECK_STARTED)
    probes = await asyncio.gather(*(timed_ready(server) for _ in range(10)))
    assert probes == [(503, {"database": "failed", "channel_layer": "ok"})] * 10
    # Ten at once, and at most one new check: the hung one may have ended meanwhile, at
    # the pool's timeout. One check per probe would pile up threads, or queue behind it.
    assert server.log().count(CHECK_STARTED) - started <= 1
    await assert_healthy(server)

    await sync_to_async(forwarder.release)()
    await readyz_becomes(server, 200, READY)


async def test_probes_are_not_redirected_to_https(
    live_servers: Callable[..., list[DaphneServer]],
) -> None:
    """A load balancer probes daphne over plain HTTP even when the site is HTTPS-only."""
    (server,) = live_servers(1, HTTPS="true", METRICS_TOKEN="scrape-me")
    page = await get(server, "/login/")
    assert page.status_code == 301  # the site itself is HTTPS-only
    assert page.headers["location"].startswith("https://")

    await assert_healthy(server)
    assert await ready(server) == (200, READY)
    scraped = await get(server, "/metrics", Authorization="Bearer scrape-me")
    assert scraped.status_code == 200
    assert "chatsite_answers_streaming" in scraped.text


async def test_metrics_need_the_token_when_one_is_set(
    live_servers: Callable[..., list[DaphneServer]],
) -> None:
    (server,) = live_servers(1, METRICS_TOKEN="scrape-me")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "scrape-me"},
        {"Authorization": "Bearer scrape-me-too"},
        {"Authorization": "Basic scrape-me"},
    ):
        response = await get(server, "/metrics", **headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "chatsite_" not in response.text
        assert "scrape-me" not in response.text

    response = await get(server, "/metrics", Authorization="Bearer scrape-me")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE chatsite_websocket_connections gauge" in response.text
    assert "process_cpu_seconds_total" in response.text  # the process collectors are there
    # Even forwarded by a proxy: the token is what counts.
    forwarded = await get(
        server, "/metrics", Authorization="Bearer scrape-me", **{"X-Forwarded-For": "1.2.3.4"}
    )
    assert forwarded.status_code == 200


async def test_metrics_without_a_token_only_for_this_host_unproxied(
    live_servers: Callable[..., list[DaphneServer]],
) -> None:
    (server,) = live_servers(1, CLIENT_IP_HEADER="X-Client-Address")
    response = await get(server, "/metrics")
    assert response.status_code == 200
    assert "chatsite_answers_finished_total" in response.text

    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Client-Address"):
        refused = await get(server, "/metrics", **{header: "127.0.0.1"})
        assert refused.status_code == 403, header
        assert "chatsite_" not in refused.text
    # An empty header is a proxy's header all the same.
    refused = await get(server, "/metrics", **{"X-Real-IP": ""})
    assert refused.status_code == 403


async def test_probes_need_no_login_and_accept_no_post(
    live_servers: Callable[..., list[DaphneServer]],
) -> None:
    (server,) = live_servers(1)
    assert await ready(server) == (200, READY)
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
        head = await client.head("/healthz")
        assert head.status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            posted = await client.post(path)
            assert posted.status_code == 405, path
    body = json.loads((await get(server, "/readyz")).text)
    assert body == READY
