"""The event loop every daphne of chatsite runs on (chatsite/daphne.py): uvloop's, asyncio's
own when UVLOOP is false or uvloop cannot be imported, and the start-up line that says which."""

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from chatsite import daphne
from tests.support.servers import ROOT, DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

ASYNCIO_LOOP = "asyncio.unix_events._UnixSelectorEventLoop"


def test_daphne_runs_on_uvloop(live_servers: Callable[..., list[DaphneServer]]) -> None:
    (server,) = live_servers(1, UVLOOP="true")

    # Said before the port opened: the application is loaded before daphne listens.
    assert "INFO chatsite.daphne: Event loop: uvloop.Loop\n" in server.log()
    assert httpx.get(f"{server.url}/healthz").text == "ok"


def test_daphne_with_uvloop_off_runs_on_asyncios_loop(
    live_servers: Callable[..., list[DaphneServer]],
) -> None:
    (server,) = live_servers(1, UVLOOP="false")

    line = f"INFO chatsite.daphne: Event loop: asyncio's own ({ASYNCIO_LOOP}): UVLOOP is false\n"
    assert line in server.log()
    assert httpx.get(f"{server.url}/healthz").text == "ok"


def test_daphne_without_uvloop_falls_back_to_asyncios_loop_and_warns(
    live_servers: Callable[..., list[DaphneServer]], tmp_path: Path
) -> None:
    # A module of that name ahead of the installed one, failing as a missing wheel would.
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "uvloop.py").write_text('raise ImportError("no uvloop here")\n')
    path = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))

    (server,) = live_servers(1, UVLOOP="true", PYTHONPATH=path)

    assert (
        f"WARNING chatsite.daphne: Event loop: asyncio's own ({ASYNCIO_LOOP}): "
        "uvloop cannot be imported (no uvloop here)\n"
    ) in server.log()
    assert httpx.get(f"{server.url}/healthz").text == "ok"


def test_daphne_refuses_a_uvloop_setting_it_cannot_read_before_it_starts() -> None:
    done = subprocess.run(
        daphne.command("127.0.0.1", 1),
        cwd=ROOT,
        env={**os.environ, "UVLOOP": "maybe"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0
    assert "UVLOOP must be true or false, not 'maybe'." in done.stderr
