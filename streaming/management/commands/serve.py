"""Serve chatsite with daphne, and the built-in simulator when no model API is configured."""

import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from streaming import services
from streaming.openai import safe_url


class Command(BaseCommand):
    help = (
        "Serve chatsite with daphne. With neither OPENAI_API_KEY nor OPENAI_BASE_URL set, "
        "also start the built-in simulator on SIMULATOR_PORT and answer with it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        swept = services.do_sweep_orphans()
        if swept:
            self.stdout.write(
                f"Marked {swept} answer(s) left streaming by a dead server interrupted."
            )
        children: list[subprocess.Popen[bytes]] = []
        # SIGTERM unwinds like Ctrl-C, so `finally` stops the children (daphne first). Doing
        # it inside the handler would deadlock: Popen.wait() is not re-entrant.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            if settings.OPENAI_SIMULATED:
                sim_port = settings.SIMULATOR_PORT
                children.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "streaming.simulator",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(sim_port),
                        ]
                    )
                )
                _wait_for_port(sim_port, children[-1])
                self.stdout.write(
                    "No OPENAI_API_KEY or OPENAI_BASE_URL: answers come from the built-in "
                    f"simulator at {settings.OPENAI_BASE_URL}."
                )
            else:
                self.stdout.write(
                    f"Model API: {safe_url(settings.OPENAI_BASE_URL)} ({settings.OPENAI_MODEL})"
                )
            self.stdout.write(f"chatsite: http://{host}:{port}/  (Ctrl-C stops it)")
            daphne = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    host,
                    "-p",
                    str(port),
                    "chatsite.asgi:application",
                ]
            )
            children.append(daphne)
            daphne.wait()
        except KeyboardInterrupt:
            pass
        finally:
            _terminate(children)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


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


def _terminate(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
