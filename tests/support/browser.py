"""Driving the chat page in Chromium: launching it, logging in, sending, and reading back
what the page shows and what its sockets carried.

Every browser `chromium()` launches watches its pages for violations of the site's
Content-Security-Policy: one fails the test (tests/browser/conftest.py) and the launch
itself, so none can come back unnoticed. A test that causes one on purpose takes it with
``policy_watch(page).take()``.

Playwright's sync API keeps an event loop running in the test's thread, where Django
refuses ORM calls: tests reach the database through ``orm``.
"""

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from django.contrib.auth.models import User
from django.db import connections
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    WebSocket,
    expect,
    sync_playwright,
)

from streaming.models import Conversation
from tests.support.servers import DaphneServer
from tests.support.services import service_missing
from tests.support.users import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHAT_URL = re.compile(r"/c/[0-9a-f-]{36}/$")
DRAFT_URL = re.compile(r"/c/new/(\?system_prompt=.*)?$")

T = TypeVar("T")

# Answers take a second or two; a loaded CI machine may need more than the default 5 s.
expect.set_options(timeout=15_000)


# Chromium logs each violation of a page's Content-Security-Policy as a console error naming
# it ("Applying inline style violates the following Content Security Policy directive …"),
# in whichever document of the page it happened: DOMPurify's parsing documents too.
POLICY_VIOLATION = "Content Security Policy"


@dataclass
class PolicyWatch:
    """The Content-Security-Policy violations Chromium reported in one browser's pages."""

    violations: list[str] = field(default_factory=list)

    def watch(self, context: BrowserContext) -> None:
        """Listen to every page of ``context``, however and whenever it was made."""
        context.on("console", self.on_console)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and POLICY_VIOLATION in message.text:
            where = message.page.url if message.page is not None else "a worker"
            self.violations.append(f"{where}: {message.text}")

    def take(self) -> list[str]:
        """The violations reported so far, which this watch then forgets."""
        taken, self.violations = self.violations, []
        return taken


# The watch of each browser `chromium()` has open in this process.
_WATCHES: dict[Browser, PolicyWatch] = {}


def policy_watch(page: Page) -> PolicyWatch:
    """The watch of the browser ``page`` belongs to."""
    browser = page.context.browser
    assert browser in _WATCHES, "not a page of chromium()"
    return _WATCHES[browser]


def assert_no_policy_violations() -> None:
    """No page of an open browser reported a violation of the policy so far."""
    refuse_violations([text for watch in _WATCHES.values() for text in watch.take()])


def refuse_violations(violations: list[str]) -> None:
    """Fail, listing ``violations``, unless there are none."""
    assert violations == [], "the Content-Security-Policy was violated:\n" + "\n".join(violations)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, watching its pages for violations of the policy; skips
    (fails in CI) where it is not installed."""
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} does not exist; apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        watch = PolicyWatch()
        # Every context, the ones tests make with their own options included.
        browser.on("context", watch.watch)
        _WATCHES[browser] = watch
        try:
            yield browser
        finally:
            # Closing delivers every console message the pages logged before it.
            browser.close()
            del _WATCHES[browser]
        refuse_violations(watch.take())


def desktop_context(browser: Browser, server: DaphneServer) -> BrowserContext:
    """A context of ``browser`` on a desktop-sized screen, its relative URLs to ``server``."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1100, "height": 760})
    context.set_default_timeout(15_000)
    return context


def orm(query: Callable[[], T]) -> T:
    """Run ORM code in a thread of its own.

    Playwright's sync API keeps an event loop running in the test's thread, and Django
    refuses ORM calls made from a thread with a running loop.
    """

    def call() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def orm_until(condition: Callable[[], object], *, timeout: float = 15.0) -> None:
    """Poll the database with ``condition`` (run by ``orm``) until it holds, or fail."""
    deadline = time.monotonic() + timeout
    while not orm(condition):
        assert time.monotonic() < deadline, "the database never reached the expected state"
        time.sleep(0.05)  # the interval between two looks, not a guess at how long it takes


def log_in(page: Page, username: str) -> None:
    """Fill in and submit the login form the page shows."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def open_new_chat(page: Page, username: str) -> None:
    """Log in from the start page and open a new chat: a draft, saved by its first message
    (after which the page is the conversation's, and connects)."""
    page.goto("/login/")
    log_in(page, username)
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
    page.get_by_role("button", name="New chat").click()
    expect(page).to_have_url(DRAFT_URL)
    expect(page.locator("#chat")).to_have_attribute("data-connection", "draft")


def open_saved_chat(page: Page, user: User) -> Conversation:
    """Log in from the start page and open an empty conversation, saved already, and
    connected: for what a conversation's socket does from its first message on."""
    page.goto("/login/")
    log_in(page, user.username)
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
    conversation = orm(lambda: Conversation.objects.create(owner=user))
    page.goto(f"/c/{conversation.id}/")
    wait_until_connected(page)
    return conversation


def wait_until_connected(page: Page) -> None:
    """Wait for the chat's socket: keys pressed before the page's script ran would reach a
    bare textarea."""
    expect(page.locator("#chat")).to_have_attribute("data-connection", "open")


def received_frames(page: Page) -> list[dict[str, Any]]:
    """Every JSON frame the page's WebSockets receive from now on, in order."""
    frames: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", watch)
    return frames


def script_problems(page: Page) -> list[str]:
    """Uncaught errors in the page's scripts, and its "chat:" warnings, from now on, in order.

    The page warns when the text it assembled from deltas differs from the saved answer:
    that would be a word lost or doubled, hidden by `done` carrying the saved text.
    """
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "warning" and message.text.startswith("chat:"):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    return problems


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message", exact=True)


def send(page: Page, text: str) -> None:
    composer(page).fill(text)
    composer(page).press("Enter")


def plain(text: str) -> str:
    """`text` with each run of whitespace made one space.

    An answer is shown rendered from Markdown: for the simulator's prose, the rendering and
    the text differ only in whitespace (paragraph breaks), so this compares them.
    """
    return " ".join(text.split())


def bubble_text(bubble: Locator) -> str:
    """The text a bubble shows, whitespace made plain (see `plain`)."""
    return plain(bubble.locator(".message-content").text_content() or "")


def wait_for_more_text(page: Page, than: int) -> None:
    """Wait until the streaming answer shows more than ``than`` characters."""
    page.wait_for_function(
        """than => {
            const el = document.querySelector(
                '.message--assistant[data-status="streaming"] .message-content');
            return el !== null && el.textContent.length > than;
        }""",
        arg=than,
    )


def finished_answer(page: Page, status: str) -> Locator:
    """The last assistant bubble, once its answer has ended with ``status``."""
    bubble = page.locator(".message--assistant").last
    expect(bubble).to_have_attribute("data-status", status)
    return bubble


# About 10 s of answer at 40 tokens a second: time to reload, stop or open a second page.
SLOW_ANSWER = "sim:tokens=400 sim:rate=40"
SLOW_ANSWER_TOKENS = 400


def streaming_answer(page: Page) -> Locator:
    return page.locator('.message--assistant[data-status="streaming"]')


def watch_dialogs(chat: Page) -> list[str]:
    """Every dialog the page opens (alert, confirm) from now on; each is dismissed."""
    dialogs: list[str] = []

    def on_dialog(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    chat.on("dialog", on_dialog)
    return dialogs


@dataclass
class Sockets:
    """Every WebSocket a page opens, and the JSON frames it sends and receives, in order."""

    opened: list[WebSocket] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    def watch(self, ws: WebSocket) -> None:
        self.opened.append(ws)
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

    def sent_types(self) -> list[str]:
        return [frame["type"] for frame in self.sent]

    def received_of(self, frame_type: str) -> list[dict[str, Any]]:
        return [frame for frame in self.received if frame["type"] == frame_type]


@dataclass
class Chat:
    """A logged-in chat page on a server with faults, and what its sockets carried."""

    page: Page
    server: DaphneServer
    sockets: Sockets
    problems: list[str]


#: The `open_chat` fixture: a server with these faults, and a chat page open on it.
OpenChat = Callable[[list[dict[str, Any]]], Chat]
