"""Fixtures shared by the whole suite: the services it runs on (PostgreSQL, Redis), users,
the simulator, sockets on the in-process application, live daphne servers.

Helpers that are not fixtures live in tests/support/, and tests import them from there.
"""

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

from chatsite.channel_layers import redis_connection
from chatsite.channel_layers import redis_layer as redis_layer_settings
from chatsite.settings import CHANNEL_LAYER
from chatsite.storages import attachment_storage
from streaming.models import Conversation
from streaming.simulator import SimulatorThread
from streaming.uploads import kept
from tests.support.providers import KEY
from tests.support.servers import (
    DaphneServer,
    RedisServer,
    TcpForwarder,
    daphne_servers,
    database_url,
)
from tests.support.services import (
    IN_CI,
    LAYER_PREFIX_VARIABLE,
    LOCAL_REDIS,
    RedisDatabase,
    new_layer_prefix,
    service_missing,
)
from tests.support.users import PASSWORD, session_cookie


def pytest_configure(config: pytest.Config) -> None:
    (Path(__file__).resolve().parent.parent / "var").mkdir(exist_ok=True)
    # Each test process (each xdist worker) its own: the servers it starts inherit it.
    os.environ[LAYER_PREFIX_VARIABLE] = new_layer_prefix()


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
    # pytest-django sets up only the databases the tests it collected use: with none, the
    # settings still name the site's own database, which is not the tests' to touch.
    tested = connection.settings_dict["NAME"] == connection.settings_dict["TEST"]["NAME"]
    if connection.vendor == "postgresql" and tested:
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


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """Attached files kept in the test's own folder (the attachments storage's), never the
    checkout's."""
    folder = tmp_path / "media"
    settings.STORAGES = {**settings.STORAGES, "attachments": attachment_storage("", folder)}
    kept.forget()
    yield folder
    kept.forget()


@pytest.fixture
def postgresql() -> None:
    """For what only PostgreSQL has: skip (fail in CI) when the tests run on SQLite."""
    if connection.vendor != "postgresql":
        service_missing(
            "PostgreSQL",
            "the tests run on SQLite: set DATABASE_URL, or let the user postgres in at"
            " 127.0.0.1:5432",
        )


@pytest.fixture(scope="session")
def redis_database() -> Iterator[RedisDatabase]:
    """A Redis database of this test process's own, on the server REDIS_URL names (the
    local one by default); fails in CI and skips elsewhere when there is none."""
    server = os.environ.get("REDIS_URL") or LOCAL_REDIS
    try:
        database = RedisDatabase(server)
    except (redis.RedisError, LookupError) as exc:
        service_missing(f"Redis at {server}", str(exc))
    yield database
    database.delete_keys(os.environ[LAYER_PREFIX_VARIABLE])
    database.release()


@pytest.fixture(scope="session")
def redis_url(redis_database: RedisDatabase) -> str:
    """The URL of this test process's Redis database (``redis_database``)."""
    return redis_database.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop, pause and start again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def forwarder(postgresql: None) -> Iterator[TcpForwarder]:
    """A forwarder in front of the test database's PostgreSQL, which the test may cut
    (``database_url_through`` names the database through it), leaving the server alone."""
    forwarder = TcpForwarder(int(connection.settings_dict.get("PORT") or 5432))
    forwarder.open()
    yield forwarder
    forwarder.close()


def use_redis_layer(settings: Any, redis_database: RedisDatabase, kind: str) -> Iterator[str]:
    """Switch to the channels-redis layer of ``kind`` and count sockets in Redis, as
    production does, under a prefix of the test's own; delete what it wrote after."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings.CHANNEL_LAYERS = {
        "default": redis_layer_settings([redis_database.url], kind, prefix=prefix)
    }
    settings.REDIS_HOSTS = [redis_connection(redis_database.url)]
    yield kind
    redis_database.delete_keys(prefix)


@pytest.fixture
def redis_layer(
    settings: Any, redis_database: RedisDatabase, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Switch the channel layer to channels-redis, as production configures it.

    The kind is CHANNEL_LAYER's (pubsub unless set), or the one a `both_layers` run names.
    """
    kind = getattr(request, "param", None) or CHANNEL_LAYER
    yield from use_redis_layer(settings, redis_database, kind)


@pytest.fixture(params=["memory", "pubsub", "core"])
def both_layers(
    request: pytest.FixtureRequest, settings: Any, redis_database: RedisDatabase
) -> Iterator[str]:
    """Run a test on the in-memory layer and on both channels-redis layers with a real Redis."""
    if request.param == "memory":
        yield "memory"
        return
    yield from use_redis_layer(settings, redis_database, request.param)


@pytest.fixture
def user(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def other_user(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("mallory", password=PASSWORD)


@pytest.fixture
def conversation(user: User) -> Conversation:
    return Conversation.objects.create(owner=user)


@pytest.fixture
def cookie(user: User) -> str:
    """``user``'s session cookie, for sockets and requests to live servers."""
    return session_cookie(user)


@pytest.fixture
def logged_in(client: Client, user: User) -> Client:
    """Django's test client, logged in as ``user``."""
    client.force_login(user)
    return client


@pytest.fixture
def staff(client: Client, django_user_model: type[User]) -> Client:
    """Django's test client, logged in as a superuser (the admin is theirs)."""
    admin = django_user_model.objects.create_superuser("root", password=PASSWORD)
    client.force_login(admin)
    return client


@pytest.fixture
def second() -> Iterator[SimulatorThread]:
    """A second model API, with its own key and models: a provider staff connected
    (tests/support/providers.py makes the provider)."""
    with SimulatorThread(
        rate=0, tokens=3, api_key=KEY, models=["sim-large", "sim-small"]
    ) as simulator:
        yield simulator


@pytest.fixture
def connect() -> Callable[..., Any]:
    """Open a WebSocket on the real ASGI application, with a real session cookie."""
    from asgiref.sync import sync_to_async

    from chatsite.asgi import application

    async def _connect(
        conversation_id: uuid.UUID,
        user: User | None = None,
        *,
        snapshot: bool = True,
        query: str = "",
    ) -> WebsocketCommunicator:
        """Connect (with ``query``, the socket URL's query string, if given); with
        ``snapshot`` (and a user), read the snapshot frame into `.snapshot`."""
        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        if user is not None:
            cookie = await sync_to_async(session_cookie)(user)
            headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
        path = f"/ws/conversations/{conversation_id}/" + (f"?{query}" if query else "")
        communicator = WebsocketCommunicator(application, path, headers=headers)
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
