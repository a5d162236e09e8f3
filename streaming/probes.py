"""What a load balancer and Prometheus ask of one server process: `/healthz`, `/readyz`,
`/metrics`.

None needs a login, and none says more than it must: `/readyz` names what failed, never
why (no exception text, no host names); `/metrics` is served only with METRICS_TOKEN, or,
without one, only to a client on this host that no proxy forwarded.

They are exempt from HTTPS's redirect (SECURE_REDIRECT_EXEMPT), so a load balancer can probe
daphne straight over plain HTTP.
"""

import asyncio
import concurrent.futures
import hmac
import ipaddress
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streaming.metrics import REGISTRY

logger = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"

# The readiness probe's database work has a thread of its own, never one of the process's
# database threads (services.db_executor), and at most one check is in flight: a database
# that hangs (a frozen host, a dropped network) holds that one thread until the connection
# pool's timeout, while every probe meanwhile answers "failed" at once after its timeout.
_db_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chatsite-readyz")
_db_check: "concurrent.futures.Future[None] | None" = None
_db_check_lock = threading.Lock()


@csrf_exempt
@require_safe
@never_cache
async def healthz(request: HttpRequest) -> HttpResponse:
    """200 while the process serves requests; asks nothing of the database or Redis."""
    return HttpResponse(OK, content_type="text/plain")


@csrf_exempt
@require_safe
@never_cache
async def readyz(request: HttpRequest) -> HttpResponse:
    """200 when the database and the channel layer both answer within READY_TIMEOUT_SECONDS,
    else 503; the body names each one `ok` or `failed`."""
    database, layer = await asyncio.gather(
        _passes("database", _database_answers), _passes("channel layer", _layer_answers)
    )
    body = {"database": database, "channel_layer": layer}
    return JsonResponse(body, status=200 if database == layer == OK else 503)


async def _passes(what: str, check: Callable[[], Awaitable[None]]) -> str:
    """``ok`` if ``check`` returns within READY_TIMEOUT_SECONDS, else ``failed``."""
    try:
        async with asyncio.timeout(settings.READY_TIMEOUT_SECONDS):
            await check()
    except Exception as exc:
        # The reason goes to the log only: the response never carries it.
        logger.warning("Readiness: the %s did not answer: %r", what, exc)
        return FAILED
    return OK


async def _database_answers() -> None:
    """A real round trip to the database (SELECT 1), on the probe's own thread."""
    global _db_check
    with _db_check_lock:
        if _db_check is None or _db_check.done():
            _db_check = _db_thread.submit(_select_one)
            # Said only here: probes that share the check in flight start none.
            logger.debug("Readiness: a database check started")
        check = _db_check
    waiting = asyncio.wrap_future(check)
    # A timed-out probe stops waiting, it does not cancel the check other probes share.
    waiting.add_done_callback(_retrieve)
    await asyncio.shield(waiting)


def _retrieve(future: "asyncio.Future[None]") -> None:
    """Take a check's outcome, so a failure nobody waited for is not reported as lost."""
    if not future.cancelled():
        future.exception()


def _select_one() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # Back to the pool (or closed): a connection this thread kept could be the broken
        # one the next check finds.
        connection.close()


async def _layer_answers() -> None:
    """A group send to a group nobody is in, on every Redis host of the channel layer.

    A send, never a receive: channels-redis may lose another channel's message when a
    receive is cancelled mid-read (see streaming/runtime.py), and a timed-out probe is one.
    The in-memory layer lives in the process, so it is always ready.
    """
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return
    for group in probe_groups(layer):
        await layer.group_send(group, {"type": "readyz.probe"})


def probe_groups(layer: Any) -> list[str]:
    """Group names that land on each Redis host of a channels-redis layer, one per host.

    The layers pick a host by hashing the group's name (``consistent_hash`` in the core
    layer, the group's Pub/Sub channel name in the pubsub one): names are tried in turn
    until every host has one.
    """
    if hasattr(layer, "consistent_hash"):  # channels_redis.core.RedisChannelLayer

        def host_of(group: str) -> object:
            return layer.consistent_hash(group)

        hosts = layer.ring_size
    else:  # channels_redis.pubsub.RedisPubSubChannelLayer (chatsite.pubsub pipelines it)

        def host_of(group: str) -> object:
            return id(layer._get_shard(layer._get_group_channel_name(group)))

        hosts = len(layer._shards)
    chosen: dict[object, str] = {}
    for n in range(64 * hosts):
        group = f"chatsite.readyz.{n}"
        chosen.setdefault(host_of(group), group)
        if len(chosen) == hosts:
            break
    return list(chosen.values())


# Headers a proxy adds: a request that carries one came through a proxy, however local.
_FORWARDED = ("HTTP_FORWARDED", "HTTP_X_REAL_IP")


@csrf_exempt
@require_GET
@never_cache
async def metrics(request: HttpRequest) -> HttpResponse:
    """This process's metrics in Prometheus's text format, for those allowed to read them."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("A bearer token is needed.", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not _local_unforwarded(request):
        return HttpResponse(
            "Metrics are served only to this host, or with METRICS_TOKEN.", status=403
        )
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def _local_unforwarded(request: HttpRequest) -> bool:
    """The request comes from this host, and no proxy forwarded it.

    Behind nginx on the same host every request comes from 127.0.0.1: only the proxy's
    headers tell a visitor's request from a local scrape. A Unix socket has no address, and
    only this host can reach it.
    """
    meta = request.META
    forwarded = [*_FORWARDED, settings.CLIENT_IP_META_KEY]
    if any(name in meta for name in forwarded if name) or any(
        name.startswith("HTTP_X_FORWARDED_") for name in meta
    ):
        return False
    address = meta.get("REMOTE_ADDR")
    if not address:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback
