"""Fixtures of the browser tests: a daphne process as `make run` serves the site, and
Chromium pages on it. The helpers that drive a page are in tests/support/browser.py.

Every test here fails when a page broke the site's Content-Security-Policy: the test itself
for what the browser reported while it ran, its teardown for what came as the browser closed.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page

from streaming.simulator import SimulatorThread
from tests.support.browser import (
    Chat,
    OpenChat,
    Sockets,
    assert_no_policy_violations,
    chromium,
    desktop_context,
    open_saved_chat,
    script_problems,
)
from tests.support.servers import DaphneServer


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test whose pages violated the Content-Security-Policy."""
    yield
    assert_no_policy_violations()


@pytest.fixture
def server_env() -> dict[str, str]:
    """Settings of ``server`` beyond the embedded default's; a test module overrides this."""
    return {}


@pytest.fixture
def server(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    server_env: dict[str, str],
) -> Iterator[DaphneServer]:
    """One daphne process configured as the embedded default: no API key, no base URL.

    The site then calls itself simulated and expects the simulator on SIMULATOR_PORT, where
    the test suite's simulator listens.
    """
    port = urlsplit(simulator.base_url).port
    (daphne,) = live_servers(1, OPENAI_BASE_URL="", SIMULATOR_PORT=str(port), **server_env)
    yield daphne
    # Captured by pytest and shown only when the test failed.
    print(f"--- daphne log ---\n{daphne.log()}")


@pytest.fixture
def page(server: DaphneServer, user: User) -> Iterator[Page]:
    """A fresh Chromium page whose relative URLs go to ``server``; ``user`` exists already."""
    with chromium() as browser:
        context = desktop_context(browser, server)
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def open_chat(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    user: User,
) -> Iterator[OpenChat]:
    """Start a daphne process with the given faults and open a new chat on it in Chromium."""
    servers: list[DaphneServer] = []
    with chromium() as browser:

        def _open(faults: list[dict[str, Any]]) -> Chat:
            # The embedded default, as the `server` fixture: the simulator on SIMULATOR_PORT.
            (server,) = live_servers(
                1,
                OPENAI_BASE_URL="",
                SIMULATOR_PORT=str(urlsplit(simulator.base_url).port),
                CHAT_FAULTS=json.dumps(faults),
            )
            servers.append(server)
            page = desktop_context(browser, server).new_page()
            sockets = Sockets()
            page.on("websocket", sockets.watch)
            problems = script_problems(page)
            # Saved already: what is healed here is the socket's, from the first message on.
            open_saved_chat(page, user)
            # Set once; a reload would lose it.
            page.evaluate("window.healingTestMark = true")
            return Chat(page, server, sockets, problems)

        yield _open
    for server in servers:
        # Captured by pytest and shown only when the test failed.
        print(f"--- daphne log ---\n{server.log()}")
