"""`manage.py serve`, the command behind `make run` and `make serve`: simulator + daphne
processes, and a clean stop."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.frames import user_message
from tests.support.live import LiveClient
from tests.support.servers import (
    FAST_CHECKPOINTS,
    ROOT,
    Listening,
    alive,
    database_url,
    free_port,
    free_ports,
    kill_group,
    serving,
    wait_for_port,
)
from tests.support.users import session_cookie
from tests.support.waiting import poll_until, until

pytestmark = pytest.mark.django_db(transaction=True)


def test_serve_starts_the_simulator_without_a_key_and_stops_cleanly(
    tmp_path: Path, conversation: Conversation
) -> None:
    an_hour_ago = timezone.now() - timedelta(hours=1)
    orphan = Message.objects.create(  # left by a server that died an hour ago
        conversation=conversation,
        role="assistant",
        status="streaming",
        content="left over",
        heartbeat_at=an_hour_ago,
        created_at=an_hour_ago,
    )
    port, sim_port = free_port(), free_port()
    with serving(tmp_path / "serve.log", simulated_env(sim_port), "--port", str(port)) as process:
        wait_for_port(port, process)
        login = httpx.get(f"http://127.0.0.1:{port}/login/")
        models = httpx.get(f"http://127.0.0.1:{sim_port}/v1/models")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    output = (tmp_path / "serve.log").read_text()

    assert login.status_code == 200
    assert "built-in simulator" in login.text
    assert models.json()["data"][0]["id"] == "simulated"
    assert "answers come from the built-in simulator" in output
    assert "Event loop: uvloop.Loop" in output  # its daphne, started as every daphne is
    assert code == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{sim_port}/v1/models")
    orphan.refresh_from_db()
    assert (orphan.status, orphan.content) == ("interrupted", "left over")


def simulated_env(simulator_port: int) -> dict[str, str]:
    """The environment of a plain `serve`: the test database, no model API (so the
    built-in simulator, on ``simulator_port``), no Redis."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.live_settings",
        "SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url(connection.settings_dict),
        "SIMULATOR_PORT": str(simulator_port),
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "REDIS_URL"):
        env.pop(name, None)
    return env


def serve_env(simulator: SimulatorThread, redis_url: str) -> dict[str, str]:
    """The environment of `serve --workers`: the test database, Redis, the simulator."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.live_settings",
        "SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": redis_url,
        "OPENAI_BASE_URL": simulator.base_url,
        "OPENAI_API_KEY": "",
        "OPENAI_MODEL": "simulated",
        **FAST_CHECKPOINTS,
    }


def children_of(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (Linux)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def proc_status(pid: int) -> dict[str, str]:
    """The fields of /proc/<pid>/status (Linux)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def signalled(pid: int, signum: int) -> bool:
    """Whether stopped ``pid`` got ``signum``: it waits to be delivered, or it was fatal (the
    kernel ends a stopped process at once for a signal whose default is to end it)."""
    try:
        status = proc_status(pid)
    except FileNotFoundError:
        return True  # ended and reaped
    if status["State"].startswith("Z"):
        return True
    mask = int(status["ShdPnd"], 16) | int(status["SigPnd"], 16)
    return bool(mask & (1 << (signum - 1)))


def state_of(pid: int) -> str:
    """The scheduler state of ``pid``: R running, S asleep, Z exited and unreaped…"""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def database_connections(pid: int) -> list[str]:
    """What ``pid`` holds open to the test database (Linux): its TCP connections to
    PostgreSQL's port, or on SQLite, the database file."""
    targets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            targets.add(os.readlink(fd))
    if connection.vendor == "sqlite":
        database = str(Path(connection.settings_dict["NAME"]).resolve())
        return [target for target in targets if target == database]
    db_port = int(connection.settings_dict.get("PORT") or 5432)
    inodes = {target[len("socket:[") : -1] for target in targets if target.startswith("socket:[")}
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == db_port and fields[9] in inodes:
                found.append(fields[2])
    return found


def port_of(daphne: int) -> int:
    """The port a daphne process was told to serve on, from its command line."""
    words = Path(f"/proc/{daphne}/cmdline").read_bytes().decode().split("\0")
    return int(words[words.index("-p") + 1])


def test_serve_workers_needs_a_shared_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with pytest.raises(CommandError, match="REDIS_URL") as refused:
        call_command("serve", workers=2, port=free_port())
    assert "in-memory layer" in str(refused.value)


def test_serve_workers_keep_off_the_simulator_port(settings: Any) -> None:
    settings.OPENAI_SIMULATED = True
    settings.SIMULATOR_PORT = free_port()
    with pytest.raises(CommandError, match="set SIMULATOR_PORT to another one"):
        call_command("serve", workers=3, port=settings.SIMULATOR_PORT - 1)


async def test_serve_workers_sigterm_saves_every_answer_and_exits_0(
    tmp_path: Path, simulator: SimulatorThread, redis_url: str, user: User
) -> None:
    ports = free_ports(2)
    env = serve_env(simulator, redis_url)
    conversations = [await Conversation.objects.acreate(owner=user) for _ in ports]
    cookie = await sync_to_async(session_cookie)(user)
    log_path = tmp_path / "serve.log"
    with serving(log_path, env, "--workers", "2", "--port", str(ports[0])) as process:
        for port in ports:
            await sync_to_async(wait_for_port)(port, process)
        daphnes = children_of(process.pid)
        # It swept at start; the daphnes do the rest, so it keeps no connection open.
        parent_connections = database_connections(process.pid)
        assert database_connections(os.getpid())  # the look sees this process's own
        async with AsyncExitStack() as stack:
            # One answer on each process, mid-stream when the command is told to stop.
            clients = [
                await stack.enter_async_context(LiveClient(Listening(port), c.id, cookie))
                for port, c in zip(ports, conversations, strict=True)
            ]
            for client in clients:
                await client.send(user_message("stop us sim:tokens=5000 sim:rate=50"))
            answer_ids = [(await c.receive_until("start"))["message_id"] for c in clients]
            for client in clients:
                await client.receive_until("delta")
            process.send_signal(signal.SIGTERM)
            code = await sync_to_async(process.wait)(30)
    output = log_path.read_text()

    assert code == 0
    assert parent_connections == []
    assert len(daphnes) == 2
    assert [pid for pid in daphnes if alive(pid)] == []
    assert output.count("Shutting down: saving 1 running answer(s)") == 2
    for client, answer_id in zip(clients, answer_ids, strict=True):
        saved = await Message.objects.aget(pk=answer_id)
        assert saved.status == "interrupted"
        assert saved.content.startswith(client.text_of(answer_id))
        assert len(saved.content.split()) < 5000


async def test_serve_workers_stops_all_when_one_dies(
    tmp_path: Path, simulator: SimulatorThread, redis_url: str, user: User
) -> None:
    ports = free_ports(2)
    conversation = await Conversation.objects.acreate(owner=user)
    cookie = await sync_to_async(session_cookie)(user)
    log_path = tmp_path / "serve.log"
    env = serve_env(simulator, redis_url)
    with serving(log_path, env, "--workers", "2", "--port", str(ports[0])) as process:
        for port in ports:
            await sync_to_async(wait_for_port)(port, process)
        daphnes = children_of(process.pid)
        by_port = {port_of(pid): pid for pid in daphnes}
        # The survivor has an answer running when its sibling crashes: it is saved.
        async with LiveClient(Listening(ports[1]), conversation.id, cookie) as client:
            await client.send(user_message("crash nearby sim:tokens=5000 sim:rate=50"))
            answer_id = (await client.receive_until("start"))["message_id"]
            await client.receive_until("delta")
            os.kill(by_port[ports[0]], signal.SIGKILL)
            code = await sync_to_async(process.wait)(30)
    output = log_path.read_text()

    assert code == 1
    assert f"The daphne process on port {ports[0]} exited by itself (code -9)" in output
    assert "the others were stopped" in output
    assert [pid for pid in daphnes if alive(pid)] == []
    saved = await Message.objects.aget(pk=answer_id)
    assert saved.status == "interrupted"
    assert saved.content.startswith(client.text_of(answer_id))


def test_sigterm_while_the_simulator_starts_leaves_no_process(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    log_path = tmp_path / "serve.log"
    with serving(log_path, simulated_env(sim_port), "--port", str(port)) as process:
        simulator = wait_for_simulator(process.pid)
        # Frozen before it listens, the command waits for its port: SIGTERM comes then.
        os.kill(simulator, signal.SIGSTOP)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", sim_port), timeout=1).close()
        process.send_signal(signal.SIGTERM)
        poll_until(
            lambda: process.poll() is not None or signalled(simulator, signal.SIGTERM),
            "the command to stop the simulator or exit",
        )
        with contextlib.suppress(ProcessLookupError):  # ended by its SIGTERM already
            os.kill(simulator, signal.SIGCONT)  # it takes its SIGTERM now, if it got one
        code = process.wait(timeout=30)
        survivors = alive(process.pid, group=True)
    output = log_path.read_text()

    assert code == 0
    assert not survivors, "the simulator outlived the command"
    assert not alive(simulator)
    assert "chatsite: http" not in output  # no daphne was started
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim_port), timeout=1).close()


def wait_for_simulator(serve: int) -> int:
    """The simulator process ``serve`` started, as soon as it runs the simulator's code."""
    found: list[int] = []

    def started() -> bool:
        for pid in children_of(serve):
            with contextlib.suppress(FileNotFoundError):  # exited meanwhile
                if b"streaming.simulator" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
                    return True
        return False

    # Looked for closely: it must be caught before it listens (within a second or so).
    poll_until(started, "the simulator's process", interval=0.002)
    return found[0]


async def test_a_second_sigterm_while_answers_are_saved_still_stops_everything(
    tmp_path: Path, simulator: SimulatorThread, redis_url: str, user: User
) -> None:
    port = free_port()
    conversation = await Conversation.objects.acreate(owner=user)
    cookie = await sync_to_async(session_cookie)(user)
    log_path = tmp_path / "serve.log"
    with serving(log_path, serve_env(simulator, redis_url), "--port", str(port)) as process:
        await sync_to_async(wait_for_port)(port, process)
        (daphne,) = children_of(process.pid)
        async with LiveClient(Listening(port), conversation.id, cookie) as client:
            await client.send(user_message("twice sim:tokens=5000 sim:rate=50"))
            answer_id = (await client.receive_until("start"))["message_id"]
            await client.receive_until("delta")
            process.send_signal(signal.SIGTERM)
            await until(
                lambda: "Shutting down: saving 1 running answer(s)" in log_path.read_text(),
                what="the daphne saving its answer",
            )
            # Held mid-save while an impatient service manager (or person) signals again.
            os.kill(daphne, signal.SIGSTOP)
            process.send_signal(signal.SIGTERM)
            os.kill(daphne, signal.SIGCONT)
            code = await sync_to_async(process.wait)(30)
            survivors = alive(process.pid, group=True)
    output = log_path.read_text()

    assert code == 0, output
    assert not survivors
    assert not alive(daphne)
    assert "Traceback" not in output
    saved = await Message.objects.aget(pk=answer_id)
    assert saved.status == "interrupted"
    assert saved.content.startswith(client.text_of(answer_id))


async def test_serve_exits_non_zero_when_a_daphne_had_to_be_killed(
    tmp_path: Path, simulator: SimulatorThread, redis_url: str
) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with serving(log_path, serve_env(simulator, redis_url), "--port", str(port)) as process:
        await sync_to_async(wait_for_port)(port, process)
        (daphne,) = children_of(process.pid)
        os.kill(daphne, signal.SIGSTOP)  # hung: it cannot act on SIGTERM
        process.send_signal(signal.SIGTERM)
        code = await sync_to_async(process.wait)(40)  # the command kills it after 15 s
        survivors = alive(process.pid, group=True)
    output = log_path.read_text()

    assert code == 1
    assert (
        f"The daphne process on port {port} did not exit within 15 s of SIGTERM and was "
        "killed: its running answers may not have been saved." in output
    )
    assert not survivors
    assert not alive(daphne)


# Creates a child that exits at once and is never reaped (as a PID 1 adopts orphans), then
# waits for another child with serve's wait; says what came back and whether the zombie is
# still unreaped.
WAITER = """
import subprocess, sys, django, os
django.setup()
from streaming.management.commands.serve import _wait_for_an_exit
other = subprocess.Popen([sys.executable, "-c", ""])
mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(other.pid, mine.pid, flush=True)
came_back = _wait_for_an_exit([mine])
left = os.waitid(os.P_PID, other.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
print(came_back is mine, came_back.returncode, left is not None, flush=True)
"""


def test_serve_waits_on_its_own_children_not_on_any_exit(tmp_path: Path) -> None:
    waiter = subprocess.Popen(
        [sys.executable, "-c", WAITER],
        cwd=ROOT,
        env=simulated_env(free_port()),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert waiter.stdout is not None
        other, mine = map(int, waiter.stdout.readline().split())
        poll_until(lambda: state_of(other) == "Z", "the other child exiting")
        # Blocked until its own child exits, not spinning on the other's exit: asleep in
        # every one of many looks (a busy loop is seen running nearly every time).
        looks: list[str] = []

        def asleep_a_while() -> bool:
            looks.append(state_of(waiter.pid))
            return looks[-50:] == ["S"] * 50

        poll_until(asleep_a_while, "the waiter asleep in 50 looks in a row", interval=0.005)
        os.kill(mine, signal.SIGTERM)
        said = waiter.stdout.readline().split()
        code = waiter.wait(timeout=20)
    finally:
        kill_group(waiter)
        if waiter.stdout is not None:
            waiter.stdout.close()

    assert said == ["True", "-15", "True"]  # its own child, and the zombie left alone
    assert code == 0
