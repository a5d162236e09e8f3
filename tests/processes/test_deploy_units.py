"""The systemd units in deploy/: the command they run serves the site and stops cleanly on
the signal they send, and the processes they start are the ones nginx's upstream lists."""

import configparser
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.support.servers import ROOT, database_url, free_port, kill_group, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)

DEPLOY = ROOT / "deploy"


def unit(name: str) -> configparser.ConfigParser:
    """A systemd unit file, read as the INI-like file it is."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read(DEPLOY / name)
    return parser


def shipped_environment() -> dict[str, str]:
    """deploy/chatsite.env's settings (KEY=value lines; comments and blanks skipped)."""
    lines = (DEPLOY / "chatsite.env").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def test_the_target_starts_the_processes_nginx_sends_to() -> None:
    wanted = unit("chatsite.target")["Unit"]["Wants"].split()
    ports = sorted(int(re.fullmatch(r"chatsite@(\d+)\.service", w)[1]) for w in wanted)  # type: ignore[index]
    upstream = (DEPLOY / "nginx.conf").read_text().split("upstream chatsite {")[1].split("}")[0]
    servers = sorted(int(p) for p in re.findall(r"^\s*server 127\.0\.0\.1:(\d+)", upstream, re.M))
    assert ports == servers
    assert len(ports) >= 2


def test_the_service_command_serves_and_stops_in_time_on_its_signal(tmp_path: Path) -> None:
    service = unit("chatsite@.service")["Service"]
    port = free_port()
    # The unit's own command, with this checkout's Python for the one it names.
    command = shlex.split(service["ExecStart"].replace("%i", str(port)))
    assert command[0].endswith("/.venv/bin/python")
    command[0] = sys.executable
    assert service["KillSignal"] == "SIGTERM"
    stop_seconds = float(service["TimeoutStopSec"])
    # The example environment's own settings, where they shape what a request gets (the
    # host names, HTTPS); its secrets, database, Redis and model API are the test's.
    shipped = shipped_environment()
    env = {
        **os.environ,
        **{name: shipped[name] for name in ("ALLOWED_HOSTS", "HTTPS", "CLIENT_IP_HEADER")},
        "DJANGO_SETTINGS_MODULE": "tests.live_settings",
        "SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url(connection.settings_dict),
    }
    env.pop("REDIS_URL", None)
    env.pop("UVLOOP", None)  # the example environment leaves it at its default
    log_path = tmp_path / "unit.log"
    with log_path.open("wb") as log:
        # Its own process group: a kill reaches whatever the command started too.
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            wait_for_port(port, process)
            health = httpx.get(f"http://127.0.0.1:{port}/healthz")
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=stop_seconds)
            except subprocess.TimeoutExpired:
                kill_group(process)
                raise AssertionError(f"still running {stop_seconds:g} s after SIGTERM") from None
    # Asked at the process's own address over plain HTTP, as the guide's restart loop does.
    assert (health.status_code, health.text) == (200, "ok")
    assert ready.status_code == 200
    assert code == 0, log_path.read_text()
    assert "Answer runtime started" in log_path.read_text()  # started with the process
    assert "Event loop: uvloop.Loop" in log_path.read_text()
