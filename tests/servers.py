"""Real servers for tests: daphne processes on free loopback ports, and service checks.

Tests start what they need and stop it themselves; nothing here is left running.
"""

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_missing(what: str, why: str) -> None:
    """Fail in CI, skip elsewhere: a missing service must never pass silently in CI."""
    message = f"{what} is not available ({why})."
    if IN_CI:
        pytest.fail(message + " CI must provide it.", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` consecutive TCP ports on 127.0.0.1 that nothing listens on right now."""
    for _ in range(100):
        first = free_port()
        if first + count > 65536:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return list(range(first, first + count))
    raise RuntimeError(f"no {count} consecutive free ports found")


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Return once something accepts on ``port``; fail if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL naming the database the test run is using right now."""
    if settings_dict["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{settings_dict['NAME']}"


class DaphneServer:
    """One daphne process serving chatsite on a free loopback port."""

    #: Plain HTTP: clients need no TLS settings for it.
    ssl_context: ssl.SSLContext | None = None

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        """Start daphne on ``port`` (a free one unless given: a restart keeps its port)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "chatsite.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, self.process)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"daphne did not start:\n{self.log()}") from None

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def pause(self) -> None:
        """Freeze the process (SIGSTOP), as a long GC pause or a stalled host would."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process run on (SIGCONT) from where it was frozen."""
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Die at once, as a crash would: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), or kill after 10 s."""
        if self.process.poll() is None:
            self.resume()  # a paused process would hold SIGTERM until the kill
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class Listening:
    """A chatsite process some other code started (`manage.py serve`), at a loopback port."""

    ssl_context: ssl.SSLContext | None = None

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"


@contextmanager
def serving(log_path: Path, env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`manage.py serve` with ``args``; SIGTERM (then a kill) at the end if it still runs."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _free_log_path(log_dir: Path) -> Path:
    """daphne-<n>.log with the first free n: a test may start servers more than once."""
    index = 0
    while (path := log_dir / f"daphne-{index}.log").exists():
        index += 1
    return path


@contextmanager
def daphne_servers(count: int, env: dict[str, str], log_dir: Path) -> Iterator[list[DaphneServer]]:
    """Start ``count`` daphne processes with the same environment; stop them all after."""
    servers: list[DaphneServer] = []
    try:
        for _ in range(count):
            servers.append(DaphneServer(env, _free_log_path(log_dir)))
        yield servers
    finally:
        for server in servers:
            server.stop()
