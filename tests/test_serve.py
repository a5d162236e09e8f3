"""`manage.py serve`, the command behind `make run` and `make serve`: simulator + daphne
processes, and a clean stop."""

import os
import signal
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
from tests.conftest import session_cookie, user_message
from tests.live import LiveClient
from tests.servers import (
    ROOT,
    Listening,
    alive,
    database_url,
    free_port,
    free_ports,
    serving,
    wait_for_port,
)

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
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.live_settings",
        "SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url(connection.settings_dict),
        "SIMULATOR_PORT": str(sim_port),
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "REDIS_URL"):
        env.pop(name, None)
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        login = httpx.get(f"http://127.0.0.1:{port}/login/")
        models = httpx.get(f"http://127.0.0.1:{sim_port}/v1/models")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        log.close()
    output = (tmp_path / "serve.log").read_text()

    assert login.status_code == 200
    assert "built-in simulator" in login.text
    assert models.json()["data"][0]["id"] == "simulated"
    assert "answers come from the built-in simulator" in output
    assert code == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{sim_port}/v1/models")
    orphan.refresh_from_db()
    assert (orphan.status, orphan.content) == ("interrupted", "left over")


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
        "STREAM_CHECKPOINT_SECONDS": "0.3",
        "STREAM_ORPHAN_SECONDS": "1.5",
    }


def children_of(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (Linux)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


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
