"""Fixtures shared by the whole suite: users, the simulator, Redis, live daphne servers."""

import asyncio
import inspect
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import SyncToAsync
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from chatsite.settings import CHANNEL_LAYER
from chatsite.settings import redis_layer as redis_layer_settings
from streaming.models import Conversation
from streaming.simulator import SimulatorThread
from tests.servers import (
    IN_CI,
    DaphneServer,
    RedisServer,
    daphne_servers,
    database_url,
    service_missing,
)

PASSWORD = "correct horse battery staple"


def pytest_configure(config: pytest.Config) -> None:
    (Path(__file__).resolve().parent.parent / "var").mkdir(exist_ok=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI the suite runs on PostgreSQL, the production database; say so if it does not."""
    if IN_CI and "postgresql" not in django_settings.DATABASES["default"]["ENGINE"]:
        pytest.exit("CI must run the suite on PostgreSQL: set DATABASE_URL=postgres://…", 2)


@pytest.fixture(scope="session", autouse=True)
def close_worker_connections(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Close the connections worker threads keep, so the test DB can be dropped.

    Async tests reach the ORM through sync_to_async, which runs it in threads whose
    connections Django's own teardown cannot see: asgiref's long-lived worker, and the
    executors of event loops that ended with their tests.
    """
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorThread]:
    """The built-in OpenAI-compatible simulator, over real HTTP on loopback."""
    with SimulatorThread(rate=400.0, tokens=30) as sim:
        yield sim


@pytest.fixture(autouse=True)
def model_api(settings: Any, simulator: SimulatorThread) -> None:
    """Every test talks to the simulator unless it says otherwise."""
    settings.OPENAI_BASE_URL = simulator.base_url
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_MODEL = "simulated"
    settings.OPENAI_READ_TIMEOUT = 5.0


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis; fails in CI and skips elsewhere when there is none."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {url}", str(exc))
    return url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop, pause and start again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_layer(settings: Any, redis_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """Switch the channel layer to channels-redis, as production configures it.

    The kind is CHANNEL_LAYER's (pubsub unless set), or the one a `both_layers` run names.
    """
    kind = getattr(request, "param", None) or CHANNEL_LAYER
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings.CHANNEL_LAYERS = {"default": redis_layer_settings([redis_url], kind, prefix=prefix)}
    yield redis_url
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def user(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def other_user(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("mallory", password=PASSWORD)


@pytest.fixture
def conversation(user: User) -> Conversation:
    return Conversation.objects.create(owner=user)


def session_cookie(user: User) -> str:
    """A `sessionid` cookie value for ``user``, as a login would set it."""
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def connect() -> Callable[..., Any]:
    """Open a WebSocket on the real ASGI application, with a real session cookie."""
    from asgiref.sync import sync_to_async

    from chatsite.asgi import application

    async def _connect(
        conversation_id: uuid.UUID, user: User | None = None, *, snapshot: bool = True
    ) -> WebsocketCommunicator:
        """Connect; with ``snapshot`` (and a user), read the snapshot frame into `.snapshot`."""
        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        if user is not None:
            cookie = await sync_to_async(session_cookie)(user)
            headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
        communicator = WebsocketCommunicator(
            application, f"/ws/conversations/{conversation_id}/", headers=headers
        )
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        if snapshot and user is not None:
            communicator.snapshot = await communicator.receive_json_from(timeout=5)
            assert communicator.snapshot["type"] == "snapshot"
        return communicator

    return _connect


@pytest.fixture
def live_servers(
    tmp_path: Path, simulator: SimulatorThread, transactional_db: None
) -> Iterator[Callable[..., list[DaphneServer]]]:
    """Start N real daphne processes on the test database (and Redis, if given)."""
    stack: list[Any] = []

    def _start(count: int = 1, *, redis_url: str | None = None, **extra: str) -> list[DaphneServer]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.live_settings",
            "SECRET_KEY": django_settings.SECRET_KEY,
            "DATABASE_URL": database_url(connection.settings_dict),
            "OPENAI_BASE_URL": simulator.base_url,
            "OPENAI_API_KEY": "",
            "OPENAI_MODEL": "simulated",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEBUG": "false",
            **extra,
        }
        env.pop("REDIS_URL", None)
        if redis_url:
            env["REDIS_URL"] = redis_url
        manager = daphne_servers(count, env, tmp_path)
        servers = manager.__enter__()
        stack.append(manager)
        return servers

    yield _start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@pytest.fixture(params=["memory", "pubsub", "core"])
def both_layers(request: pytest.FixtureRequest, settings: Any, redis_url: str) -> Iterator[str]:
    """Run a test on the in-memory layer and on both channels-redis layers with a real Redis."""
    if request.param == "memory":
        yield "memory"
        return
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings.CHANNEL_LAYERS = {
        "default": redis_layer_settings([redis_url], request.param, prefix=prefix)
    }
    yield str(request.param)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


def user_message(content: str, client_id: uuid.UUID | str | None = None) -> dict[str, str]:
    """A `user_message` frame, with a fresh client_id unless one is given."""
    return {"type": "user_message", "content": content, "client_id": str(client_id or uuid.uuid4())}


async def receive_until(
    communicator: WebsocketCommunicator, frame_type: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Every frame up to and including the first of ``frame_type``."""
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame["type"] == frame_type:
            return frames


async def until(
    condition: Callable[[], Any], *, timeout: float = 10.0, what: str = "the condition"
) -> None:
    """Poll ``condition()`` (awaiting what it returns, if awaitable) until it is true.

    Fails saying ``what`` did not happen by the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)


def user_change_form(user: User, *, daily_token_budget: str = "", **changes: Any) -> dict[str, Any]:
    """What the admin's user change form posts for ``user`` (unchecked boxes are absent),
    with its Limits inline: empty, or a new daily token budget."""
    joined = timezone.localtime(user.date_joined)
    form = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else None,
        "is_staff": "on" if user.is_staff else None,
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "quota-TOTAL_FORMS": "1",
        "quota-INITIAL_FORMS": "0",
        "quota-MIN_NUM_FORMS": "0",
        "quota-MAX_NUM_FORMS": "1",
        "quota-0-user": str(user.pk),
        "quota-0-daily_token_budget": daily_token_budget,
        "_save": "Save",
        **changes,
    }
    return {name: value for name, value in form.items() if value is not None}
