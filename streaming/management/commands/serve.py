"""Serve chatsite with daphne, and the built-in simulator when no model API is configured.

With ``--workers N`` it runs N daphne processes on consecutive ports, for nginx to spread
connections over (deploy/nginx.conf). Any process can serve any socket: answers live in
the database and reach every process through the channel layer, which must then be Redis.

SIGTERM or SIGINT stops every daphne at once; each saves its running answers as
`interrupted` before it exits. A daphne that dies by itself stops the others too, and the
command exits non-zero saying which: the service manager (systemd) restarts the whole set,
rather than this command hiding a crash behind a quiet restart. A daphne that has to be
killed because it did not exit in time makes the exit non-zero too: its answers may be
lost. Signals that come while the children are being stopped are ignored.
"""

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections

from chatsite import daphne
from streaming.openai import safe_url
from streaming.services import answers

# How long the daphne processes get to save their answers and exit after SIGTERM (each
# waits up to runtime._SHUTDOWN_SECONDS for its answers, all at the same time).
_STOP_SECONDS = 15.0


class Command(BaseCommand):
    help = (
        "Serve chatsite with daphne, on --workers processes on consecutive ports from "
        "--port. With neither OPENAI_API_KEY nor OPENAI_BASE_URL set, also start the "
        "built-in simulator on SIMULATOR_PORT and answer with it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="daphne processes, on ports --port, --port + 1, … (more than 1 needs REDIS_URL)",
        )

    def handle(self, *args: Any, host: str, port: int, workers: int, **options: Any) -> None:
        ports = self._check(port, workers)
        swept = answers.do_sweep_orphans()
        if swept:
            self.stdout.write(
                f"Marked {len(swept)} answer(s) left streaming by a dead server interrupted."
            )
        # This process needs the database no more: its daphnes have their own connections.
        _close_database()
        simulator: subprocess.Popen[bytes] | None = None
        daphnes: dict[int, subprocess.Popen[bytes]] = {}
        # SIGTERM unwinds like Ctrl-C, so `finally` stops the children (daphne first). Doing
        # it inside the handler would deadlock: Popen.wait() is not re-entrant. Both go
        # through one handler, which holds them while a child is being started.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        try:
            if settings.OPENAI_SIMULATED:
                with _signals_held():
                    simulator = _start_simulator(settings.SIMULATOR_PORT)
                _wait_for_port(settings.SIMULATOR_PORT, simulator)
                self.stdout.write(
                    "No OPENAI_API_KEY or OPENAI_BASE_URL: answers come from the built-in "
                    f"simulator at {settings.OPENAI_BASE_URL}."
                )
            else:
                self.stdout.write(
                    f"Model API: {safe_url(settings.OPENAI_BASE_URL)} ({settings.OPENAI_MODEL})"
                )
            for each in ports:
                with _signals_held():
                    daphnes[each] = _start_daphne(host, each)
            where = ", ".join(f"http://{host}:{each}/" for each in ports)
            self.stdout.write(f"chatsite: {where}  (Ctrl-C stops it)")
            died = _wait_for_an_exit([*daphnes.values(), *([simulator] if simulator else [])])
        except KeyboardInterrupt:
            died = None
        finally:
            _ignore_stop_signals()
            killed = _stop(list(daphnes.values()))
            if simulator is not None:
                _stop([simulator])
        if died is not None:
            what = "The simulator" if died is simulator else _daphne_name(daphnes, died)
            raise CommandError(
                f"{what} exited by itself (code {died.returncode}); the others were stopped."
            )
        if killed:
            names = ", ".join(_daphne_name(daphnes, each) for each in killed)
            raise CommandError(
                f"{names} did not exit within {_STOP_SECONDS:g} s of SIGTERM and was killed: "
                "its running answers may not have been saved."
            )

    def _check(self, port: int, workers: int) -> list[int]:
        """The ports to serve on; refuse what cannot work across several processes."""
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        ports = list(range(port, port + workers))
        if ports[-1] > 65535:
            raise CommandError(f"{workers} workers from port {port} run past port 65535.")
        if settings.OPENAI_SIMULATED and settings.SIMULATOR_PORT in ports:
            raise CommandError(
                f"The simulator's port {settings.SIMULATOR_PORT} is among the daphne ports "
                f"{ports[0]} to {ports[-1]}: set SIMULATOR_PORT to another one."
            )
        if workers > 1:
            backend = str(settings.CHANNEL_LAYERS["default"]["BACKEND"])
            if backend.endswith("InMemoryChannelLayer"):
                raise CommandError(
                    "--workers above 1 needs a channel layer every process shares: set "
                    "REDIS_URL or REDIS_SENTINELS (the in-memory layer cannot reach other "
                    "processes, so a stop or an answer's text would never cross between them)."
                )
            if connection.vendor == "sqlite":
                self.stderr.write(
                    "Warning: SQLite takes one write at a time for the whole database; "
                    f"{workers} processes will wait on each other. Use PostgreSQL "
                    "(DATABASE_URL=postgres://…) for several processes."
                )
        return ports


class _Held:
    """Whether stop signals are held now, and whether one came while they were."""

    active = False
    came = False


def _interrupt(signum: int, frame: object) -> None:
    if _Held.active:
        _Held.came = True
    else:
        raise KeyboardInterrupt


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the end of the block, and raise KeyboardInterrupt there.

    Raised inside Popen (it waits for the child's exec), it would lose the child before the
    caller had it to stop: that child would outlive the command, holding its port.
    """
    _Held.active = True
    try:
        yield
    finally:
        _Held.active = False
        if _Held.came:
            raise KeyboardInterrupt


def _start_simulator(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.simulator", "--host", "127.0.0.1", "--port", str(port)]
    )


def _ignore_stop_signals() -> None:
    """Ignore SIGTERM and SIGINT from now on: the children are being stopped, and a second
    signal must not unwind the waits for them and abandon them."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_daphne(host: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(daphne.command(host, port))


def _daphne_name(daphnes: dict[int, subprocess.Popen[bytes]], process: object) -> str:
    port = next(each for each, daphne in daphnes.items() if daphne is process)
    return f"The daphne process on port {port}"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(
                f"The simulator exited (code {process.returncode}); is port {port} free?"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise CommandError(f"The simulator did not listen on port {port} within {timeout:g} s.")


def _close_database() -> None:
    """Close this process's database connections, and their pool if it keeps one."""
    for each in connections.all(initialized_only=True):
        close_pool = getattr(each, "close_pool", None)
        each.close()
        if close_pool is not None:
            close_pool()


def _wait_for_an_exit(children: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Block until one of ``children`` exits, and return it (not reaped by anyone else)."""
    # A pidfd per child turns readable when that child exits, and is not reaped by it; no
    # other process's exit wakes us (waitid(P_ALL) would, for every orphan a PID 1 adopts).
    pidfds = {os.pidfd_open(child.pid): child for child in children}
    try:
        poller = select.poll()
        for fd in pidfds:
            poller.register(fd, select.POLLIN)
        while True:
            for child in children:
                if child.poll() is not None:
                    return child
            poller.poll()
    finally:
        for fd in pidfds:
            os.close(fd)


def _stop(children: list[subprocess.Popen[bytes]]) -> list[subprocess.Popen[bytes]]:
    """SIGTERM every child at once, then wait for all of them; kill those that hang, and
    return them."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + _STOP_SECONDS
    killed = []
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            killed.append(child)
    return killed
