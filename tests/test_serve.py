"""`manage.py serve`, the command behind `make run`: simulator + daphne, and a clean stop."""

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from streaming.models import Conversation, Message
from tests.servers import ROOT, database_url, free_port, wait_for_port

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
