"""Real servers for tests: daphne processes on free loopback ports, and service checks.

Tests start what they need and stop it themselves; nothing here is left running.
"""

import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import redis

from chatsite import daphne
from tests.support.services import service_missing

ROOT = Path(__file__).resolve().parents[2]
#: For the servers of tests that wait on checkpoints and the orphan sweep (defaults: 1 s, 10 s).
#: The orphan timeout leaves a loaded machine (several test processes, each with servers)
#: room to write a checkpoint late: at 1.5 s, a live answer was sometimes swept.
FAST_CHECKPOINTS = {"STREAM_CHECKPOINT_SECONDS": "0.3", "STREAM_ORPHAN_SECONDS": "3"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's range of
    ephemeral ports: between choosing a port and a server binding it, a port of that range
    may be taken by any outgoing connection (a test's client, Redis, PostgreSQL), which made
    servers fail now and then with "Address already in use"."""
    low, high = _unclaimed_range()
    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found between {low} and {high}")


def _unclaimed_range() -> tuple[int, int]:
    """Ports the kernel does not hand out to outgoing connections: below its ephemeral
    range (Linux's ip_local_port_range; 32768 when it cannot be read), from 20000."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    return (20000, first) if first > 21000 else (first - 1000, first)


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


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
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


def database_url_through(settings_dict: dict[str, Any], forwarder: "TcpForwarder") -> str:
    """A DATABASE_URL naming the same database as ``settings_dict``, reached through
    ``forwarder`` (which stands in front of its server)."""
    return database_url({**settings_dict, "HOST": "127.0.0.1", "PORT": forwarder.port})


class DaphneServer:
    """One daphne process serving chatsite on a free loopback port, started as every daphne
    of chatsite is (chatsite/daphne.py: UVLOOP in ``env`` chooses its event loop)."""

    #: Plain HTTP: clients need no TLS settings for it.
    ssl_context: ssl.SSLContext | None = None

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        """Start daphne on ``port`` (a free one unless given: a restart keeps its port)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = start_listening(
            daphne.command("127.0.0.1", self.port), env, self._log, log_path, self.port
        )

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
    """`manage.py serve` with ``args``; SIGTERM (then a kill) at the end if it still runs.

    It leads a process group of its own, so the kill reaches its daphnes and simulator too.
    """
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_group(process)
        else:
            kill_group(process)  # children it left, if it died without stopping them
        log.close()


def start_listening(
    command: list[str], env: dict[str, str], log: IO[bytes], log_path: Path, port: int
) -> subprocess.Popen[bytes]:
    """Start ``command`` (from the project's folder, its output to ``log``) and wait until
    it listens on ``port``; if it dies or never listens, end it and fail with its log."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
    except RuntimeError as error:
        end_process(process)
        log.close()
        raise RuntimeError(f"{error}:\n{log_path.read_text(errors='replace')}") from None
    return process


def end_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it still runs after 10 s; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL every process left in ``process``'s group (it leads one), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def alive(pid: int, *, group: bool = False) -> bool:
    """Whether process ``pid`` runs (or is unreaped), or with ``group`` any process of the
    group it leads."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_log_path(log_dir: Path) -> Path:
    """daphne-<n>.log with the first free n: a test may start servers more than once."""
    index = 0
    while (path := log_dir / f"daphne-{index}.log").exists():
        index += 1
    return path


@contextmanager
def daphne_servers(count: int, env: dict[str, str], log_dir: Path) -> Iterator[list[DaphneServer]]:
    """Start ``count`` daphne processes with the same environment; stop them all after.
    Attached files are kept under ``log_dir`` (the test's) unless ``env`` says where."""
    env = {"MEDIA_ROOT": str(log_dir / "media"), **env}
    servers: list[DaphneServer] = []
    try:
        for _ in range(count):
            servers.append(DaphneServer(env, _free_log_path(log_dir)))
        yield servers
    finally:
        for server in servers:
            server.stop()


class RedisServer:
    """A throwaway redis-server on a free loopback port, that tests may kill and restart.

    ``args`` go on its command line (``--replicaof``…); ``sentinel_conf`` makes it a Redis
    Sentinel with that configuration instead.
    """

    def __init__(self, workdir: Path, *args: str, sentinel_conf: str = "") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server", "not installed")
        self.binary = str(binary)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir / f"redis-{self.port}"
        self.workdir.mkdir(parents=True)
        self.args = args
        self.sentinel_conf = sentinel_conf
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (again, on the same port) and return once it answers PING."""
        command = [self.binary]
        if self.sentinel_conf:
            # A sentinel rewrites its configuration file as it learns: one of its own.
            conf = self.workdir / "sentinel.conf"
            conf.write_text(self.sentinel_conf)
            command += [str(conf), "--sentinel"]
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        if not self.sentinel_conf:
            command += ["--save", "", "--appendonly", "no", *self.args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = self.client()
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.kill()  # not left running (and holding the port) behind the failure
        raise RuntimeError("redis-server did not start")

    def client(self) -> redis.Redis:
        """A client of this server (or sentinel)."""
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def kill(self) -> None:
        """Stop it at once; its data goes with it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused one would hold the kill
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open and nothing answers, as in a partition."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server answer again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class TcpForwarder:
    """A loopback port that forwards each connection to another port, until the test
    closes it: its connections are cut and the port refuses new ones until it reopens.

    Stands in front of a real server (PostgreSQL) to make it unreachable and back, without
    touching the server that the rest of the suite uses.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        #: New connections are accepted and then left unanswered, as by a frozen server.
        self.holding = False

    def open(self) -> None:
        """Listen (again, on the same port) and forward every connection."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        self.cut()

    def hold(self) -> None:
        """Cut every connection, and leave new ones unanswered until ``release``."""
        self.holding = True
        self.cut()

    def release(self) -> None:
        """Forward new connections again (the held ones are cut)."""
        self.holding = False
        self.cut()

    def cut(self) -> None:
        """Close every connection through the forwarder, both ends."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.holding:
                with self._lock:
                    self._sockets.add(client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes one way until either side closes."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
