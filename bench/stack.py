"""What a load run stands on: its PostgreSQL database, Redis, and the simulator's process."""

import os
import selectors
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = (
    os.environ.get("BENCH_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/chatsite_bench"
)
"""The benchmark's own database; created if missing, migrated before every run."""
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/7"
"""Redis for the channel layer; its own database number, apart from the tests' (0)."""
LIFTED_LIMITS = {
    "LIMIT_ANSWERS_PER_USER": "100000",
    "LIMIT_SOCKETS_PER_USER": "100000",
    "LIMIT_MESSAGES_PER_MINUTE": "100000",
    "STREAM_MAX_ANSWERS": "10000",
}
"""The benchmark's one user stands for N people, so the per-user limits are lifted, and
the per-process one too: the figures are about the relay, not about refusing."""


def unreachable(database_url: str, redis_url: str) -> str | None:
    """Why PostgreSQL or Redis cannot be used, or None when both answer."""
    import psycopg
    import redis

    if not database_url.startswith(("postgres://", "postgresql://")):
        return f"BENCH_DATABASE_URL must name PostgreSQL, not {_safe(database_url)}"
    try:
        psycopg.connect(_maintenance_url(database_url), connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {_safe(database_url)} is not reachable ({exc})"
    try:
        redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {_safe(redis_url)} is not reachable ({exc})"
    return None


def one_process_env(**extra: str) -> dict[str, str]:
    """The environment of a daphne process on the bench's PostgreSQL with the limits
    lifted, and the in-memory layer unless ``extra`` names a REDIS_URL; ``extra`` on top."""
    return {
        **{name: value for name, value in os.environ.items() if name != "REDIS_URL"},
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "SECRET_KEY": "bench-only-secret",
        "DATABASE_URL": DATABASE_URL,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        **LIFTED_LIMITS,
        **extra,
    }


def layer_backend(env: dict[str, str]) -> str:
    """The channel layer daphne will run with this environment, as its settings decide."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    if done.returncode:
        raise SystemExit(f"chatsite's settings failed to load:\n{done.stderr}")
    return done.stdout.strip()


def setup_django(database_url: str) -> tuple[str, Any]:
    """Configure Django on the benchmark database (created, migrated); a logged-in user.

    Returns the session cookie of the `bench` user, and the user.
    """
    import psycopg
    from psycopg import sql

    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(_maintenance_url(database_url), autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if found.fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "SECRET_KEY": "bench-only-secret",
            "DATABASE_URL": database_url,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return logged_in("bench")


def logged_in(username: str) -> tuple[str, Any]:
    """The session cookie of a logged-in user of that name (made if missing), and the user."""
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(username=username)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value, user


class SimulatorProcess:
    """`python -m streaming.simulator` on a free port, in a process of its own."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.base_url = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> Self:
        self.log_path.parent.mkdir(exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "streaming.simulator", "--port", "0"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self._process.stdout is not None
        # It prints one line, "simulator listening on <base url>", once it listens.
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            line = self._process.stdout.readline() if selector.select(10) else b""
        if not line.startswith(b"simulator listening on "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the simulator did not start; see {self.log_path}")
        self.base_url = line.split()[-1].decode()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def _maintenance_url(database_url: str) -> str:
    """The same server's `postgres` database, which always exists."""
    return urlunsplit(urlsplit(database_url)._replace(path="/postgres"))


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
