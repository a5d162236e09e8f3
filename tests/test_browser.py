"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against a real daphne.

The server is a separate process on the test database, answering with the simulator; the
browser logs in through the real login form. Every test saves a screenshot of its key moment
in its `tmp_path`, for a person to look at when it fails.
"""

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.utils import timezone
from playwright.sync_api import (
    ConsoleMessage,
    Locator,
    Page,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from streaming.models import Conversation, Message
from streaming.services import INTERRUPTED_MESSAGE
from streaming.simulator import SimulatorThread
from streaming.simulator.payloads import STREAM_ERROR_MESSAGE
from tests.conftest import PASSWORD
from tests.servers import DaphneServer, service_missing

pytestmark = pytest.mark.django_db(transaction=True)

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


@pytest.fixture
def server(
    live_servers: Callable[..., list[DaphneServer]], simulator: SimulatorThread
) -> Iterator[DaphneServer]:
    """One daphne process configured as the embedded default: no API key, no base URL.

    The site then calls itself simulated and expects the simulator on SIMULATOR_PORT, where
    the test suite's simulator listens.
    """
    port = urlsplit(simulator.base_url).port
    (daphne,) = live_servers(1, OPENAI_BASE_URL="", SIMULATOR_PORT=str(port))
    yield daphne
    # Captured by pytest and shown only when the test failed.
    print(f"--- daphne log ---\n{daphne.log()}")


@pytest.fixture
def page(server: DaphneServer, user: User) -> Iterator[Page]:
    """A fresh Chromium page whose relative URLs go to ``server``; ``user`` exists already."""
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} does not exist; apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(base_url=server.url, viewport={"width": 1100, "height": 760})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


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
    """Wait for the chat's socket: keys pressed before chat.js runs would reach a bare textarea."""
    expect(page.locator("#chat")).to_have_attribute("data-connection", "open")


def received_frames(page: Page) -> list[dict[str, Any]]:
    """Every JSON frame the page's WebSockets receive from now on, in order."""
    frames: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", watch)
    return frames


def script_problems(page: Page) -> list[str]:
    """Uncaught errors in the page's scripts, and chat.js's warnings, from now on, in order.

    chat.js warns when the text it assembled from deltas differs from the saved answer:
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


def test_answer_streams_and_is_kept_after_reload(page: Page, user: User, tmp_path: Path) -> None:
    frames = received_frames(page)
    # Saved already, so every delta of the answer comes over this page's socket (a new
    # chat's page connects once its first message is saved, by when some may be in the
    # snapshot: see test_conversations_browser.py).
    open_saved_chat(page, user)
    # Markup in the text must come out as text: the simulator repeats it in its answer too.
    prompt = "Tell me a <b>story</b> sim:tokens=40 sim:rate=40"

    composer(page).fill(prompt)
    composer(page).press("Enter")

    # The first message names the conversation at once, without a reload.
    expect(page.locator("#chat-title")).to_have_text(prompt)
    expect(page.locator('.sidebar-list a[aria-current="page"]')).to_have_text(prompt)
    user_bubble = page.locator(".message--user")
    expect(user_bubble).to_have_count(1)
    expect(user_bubble.locator(".message-content")).to_have_text(prompt)
    # While it streams, the bubble already shows some text and the typing indicator; the
    # user may write the next message but not send it.
    streaming = page.locator('.message--assistant[data-status="streaming"]')
    expect(streaming.locator(".typing")).to_be_visible()
    expect(streaming.locator(".message-content")).not_to_have_text("")
    composer(page).fill("next question")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    page.screenshot(path=tmp_path / "streaming.png")

    bubble = finished_answer(page, "complete")
    streamed = bubble_text(bubble)
    assert streamed
    assert "<b>story</b>" in streamed
    expect(bubble.locator(".typing")).to_have_count(0)
    # Prompt and answer apart: "N tokens" of both read as the answer's length.
    saved_usage = orm(lambda: Message.objects.get(role="assistant", conversation__owner=user).usage)
    assert saved_usage is not None
    sent, written = saved_usage["prompt_tokens"], saved_usage["completion_tokens"]
    usage_text = f"{sent} tokens in · {written} out"
    expect(bubble.locator(".message-usage")).to_have_text(usage_text)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    deltas = [f for f in frames if f["type"] == "delta"]
    assert len(deltas) > 1, "the answer arrived in one piece, not streamed"
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert plain("".join(d["text"] for d in deltas)) == streamed
    page.screenshot(path=tmp_path / "complete.png")

    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message")).to_have_count(2)
    expect(page.locator(".message-usage")).to_have_text(usage_text)  # the same, from the server
    expect(page.locator(".message--user .message-content")).to_have_text(prompt)
    assert bubble_text(page.locator(".message--assistant")) == streamed
    expect(page.locator(".messages b")).to_have_count(0)

    # The history is in the HTML itself: a browser without JavaScript sees it too.
    no_js = page.context.browser.new_context(  # type: ignore[union-attr]
        storage_state=page.context.storage_state(), java_script_enabled=False
    )
    try:
        no_js_page = no_js.new_page()
        no_js_page.goto(page.url)
        assert bubble_text(no_js_page.locator(".message--assistant")) == streamed
    finally:
        no_js.close()

    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.COMPLETE
    assert plain(answer.content) == streamed


def test_composer_shift_enter_inserts_newline_without_sending(
    page: Page, user: User, tmp_path: Path
) -> None:
    open_new_chat(page, user.username)
    box = composer(page)

    box.fill("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")

    expect(box).to_have_value("first line\nsecond line")
    expect(page.locator(".message")).to_have_count(0)
    page.screenshot(path=tmp_path / "shift-enter.png")
    assert orm(lambda: Message.objects.filter(conversation__owner=user).count()) == 0

    # Frames are handled in order: had Shift+Enter sent anything, it would be saved first.
    box.press("Enter")
    expect(page.locator('.message--user[data-status="complete"]')).to_have_count(1)
    expect(page.locator(".message--user .message-content")).to_have_text("first line\nsecond line")
    finished_answer(page, "complete")
    sent = orm(lambda: list(Message.objects.filter(conversation__owner=user, role="user")))
    assert [m.content for m in sent] == ["first line\nsecond line"]


def test_reply_http_error_shows_provider_message(page: Page, user: User, tmp_path: Path) -> None:
    open_new_chat(page, user.username)

    composer(page).fill("Hello sim:status=500")
    composer(page).press("Enter")

    bubble = finished_answer(page, "error")
    expect(bubble.locator(".message-error")).to_be_visible()
    expect(bubble.locator(".message-error")).to_have_text(STREAM_ERROR_MESSAGE)
    expect(bubble.locator(".message-status")).to_have_text("Failed")
    expect(bubble.locator(".message-content")).to_have_text("")
    # The failure ends the answer: the user may write again.
    composer(page).fill("again")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    page.screenshot(path=tmp_path / "http-error.png")

    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.ERROR
    assert answer.content == ""
    assert answer.error == STREAM_ERROR_MESSAGE


def test_reply_error_midstream_keeps_partial_text(page: Page, user: User, tmp_path: Path) -> None:
    open_new_chat(page, user.username)

    composer(page).fill("Hello sim:fault=error sim:after=3")
    composer(page).press("Enter")

    bubble = finished_answer(page, "error")
    partial = bubble_text(bubble)
    assert partial
    expect(bubble.locator(".message-content")).to_be_visible()
    expect(bubble.locator(".message-error")).to_have_text(STREAM_ERROR_MESSAGE)
    page.screenshot(path=tmp_path / "midstream-error.png")

    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.ERROR
    assert plain(answer.content) == partial
    assert answer.error == STREAM_ERROR_MESSAGE

    # After a reload the partial text and the error are still there, rendered by the server.
    page.reload()
    bubble = page.locator(".message--assistant")
    expect(bubble.locator(".message-content")).to_have_text(partial)
    expect(bubble.locator(".message-error")).to_have_text(STREAM_ERROR_MESSAGE)


def test_chat_page_anonymous_redirects_to_login_and_back(
    page: Page, user: User, tmp_path: Path
) -> None:
    conversation = orm(lambda: Conversation.objects.create(owner=user, title="Holiday plans"))
    chat_path = f"/c/{conversation.id}/"

    page.goto(chat_path)

    expect(page).to_have_url(re.compile(r"/login/\?next=" + re.escape(chat_path) + "$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.screenshot(path=tmp_path / "login.png")
    log_in(page, user.username)
    expect(page).to_have_url(re.compile(re.escape(chat_path) + "$"))
    expect(page.get_by_role("heading", name="Holiday plans")).to_be_visible()
    wait_until_connected(page)
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_be_focused()


def test_simulated_model_banner_visible_without_api_key(
    page: Page, user: User, tmp_path: Path
) -> None:
    page.goto("/login/")
    banner = page.locator("#simulated-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Answers come from the built-in simulator, not a real model.")
    expect(banner).to_contain_text("Set OPENAI_API_KEY to use one.")

    log_in(page, user.username)
    page.get_by_role("button", name="New chat").click()
    expect(page).to_have_url(DRAFT_URL)
    expect(page.locator("#simulated-banner")).to_be_visible()
    page.screenshot(path=tmp_path / "banner.png")


# About 10 s of answer at 40 tokens a second: time to reload, stop or open a second page.
SLOW_ANSWER = "sim:tokens=400 sim:rate=40"
SLOW_ANSWER_TOKENS = 400


def streaming_answer(page: Page) -> Locator:
    return page.locator('.message--assistant[data-status="streaming"]')


def test_reload_mid_answer_continues_without_gap_or_duplicate(
    page: Page, user: User, tmp_path: Path
) -> None:
    frames = received_frames(page)
    problems = script_problems(page)
    open_new_chat(page, user.username)
    send(page, f"Tell me a long story {SLOW_ANSWER}")

    shown = 0
    for _ in range(2):
        # Well over a second of answer between reloads: each snapshot resumes from a
        # checkpoint (STREAM_CHECKPOINT_SECONDS is 1) and the sync brings what came after it.
        wait_for_more_text(page, shown + 400)
        shown = len(bubble_text(streaming_answer(page)))
        page.reload()
        wait_until_connected(page)
        # Still streaming after the reload, and it goes on from where the page left off.
        expect(streaming_answer(page)).to_have_count(1)
        wait_for_more_text(page, shown)
    # A second tab joins mid-answer too, from a snapshot of its own.
    second = page.context.new_page()
    second_problems = script_problems(second)
    second.goto(page.url)
    wait_until_connected(second)
    expect(streaming_answer(second)).to_have_count(1)
    wait_for_more_text(second, 0)
    second.screenshot(path=tmp_path / "second-page-mid-answer.png")

    text = bubble_text(finished_answer(page, "complete"))
    assert bubble_text(finished_answer(second, "complete")) == text
    page.screenshot(path=tmp_path / "complete-after-reloads.png")
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.COMPLETE
    assert plain(answer.content) == text
    # The pages resumed from snapshots of a streaming answer, and what they assembled from
    # snapshot, sync and deltas was already the saved text when `done` came.
    resumed = [f for f in frames if f["type"] == "snapshot" and f["active"] is not None]
    assert len(resumed) == 3  # the new chat's own page, once saved; the reload; the second
    # (the first may come before the answer's first piece)
    assert all(f["active"]["seq"] > 0 and f["active"]["text"] for f in resumed[1:])
    assert problems == []
    assert second_problems == []


def test_socket_drop_and_unavailable_mid_answer_resume_without_gap(
    page: Page, user: User, tmp_path: Path
) -> None:
    problems = script_problems(page)
    # Every socket passes through here: normally straight to the server; one of them is
    # answered as a server without its channel layer would (an error frame, then 4503).
    routes: list[WebSocketRoute] = []
    unavailable = {"next": False}

    def route(ws: WebSocketRoute) -> None:
        if unavailable["next"]:
            unavailable["next"] = False
            ws.send(json.dumps({"type": "error", "code": "unavailable", "message": "Down."}))
            ws.close(code=4503)
            return
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r"/ws/conversations/"), route)
    open_new_chat(page, user.username)
    send(page, f"Tell me a long story {SLOW_ANSWER}")
    wait_for_more_text(page, 300)

    # The network drops; the first reconnect finds the layer down, the next one works.
    unavailable["next"] = True
    routes[-1].close()
    status = page.locator("#connection-status")
    expect(status).to_have_text("Live updates are unavailable — retrying…")
    expect(page.locator("#chat")).to_have_attribute("data-connection", "reconnecting")
    page.screenshot(path=tmp_path / "unavailable.png")
    wait_until_connected(page)
    expect(status).to_have_text("")
    assert len(routes) == 2

    text = bubble_text(finished_answer(page, "complete"))
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.COMPLETE
    assert plain(answer.content) == text
    assert problems == []


def test_stop_button_cancels_and_keeps_partial_text(page: Page, user: User, tmp_path: Path) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    send(page, f"Write at length {SLOW_ANSWER}")
    wait_for_more_text(page, 80)
    stop = page.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_visible()
    page.screenshot(path=tmp_path / "streaming-with-stop.png")

    stop.click()

    bubble = finished_answer(page, "cancelled")
    expect(bubble.locator(".message-status")).to_have_text("Stopped")
    expect(bubble.locator(".message-error")).to_have_count(0)
    expect(stop).to_be_hidden()
    expect(composer(page)).to_be_focused()
    expect(bubble.get_by_role("button", name="Retry")).to_be_visible()
    page.screenshot(path=tmp_path / "stopped.png")
    partial = bubble_text(bubble)
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.CANCELLED
    assert plain(answer.content) == partial
    assert 0 < len(partial.split()) < SLOW_ANSWER_TOKENS

    # Sending works again, and the stopped answer is no longer the last: no Retry on it.
    composer(page).fill("Thanks sim:tokens=5")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message--assistant")).to_have_count(2)
    finished_answer(page, "complete")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    assert problems == []


def test_escape_stops_the_answer(page: Page, user: User, tmp_path: Path) -> None:
    open_new_chat(page, user.username)
    send(page, f"Write at length {SLOW_ANSWER}")
    wait_for_more_text(page, 80)
    # Esc works from anywhere on the page, not only in the composer.
    page.locator("#chat-title").click()
    expect(composer(page)).not_to_be_focused()

    page.keyboard.press("Escape")

    bubble = finished_answer(page, "cancelled")
    expect(bubble.locator(".message-status")).to_have_text("Stopped")
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_hidden()
    page.screenshot(path=tmp_path / "escape-stopped.png")
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.CANCELLED
    assert plain(answer.content) == bubble_text(bubble)
    assert len(answer.content.split()) < SLOW_ANSWER_TOKENS


def test_retry_after_failure_answers_again(page: Page, user: User, tmp_path: Path) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    # The simulator counts `sim:times` per message text, for the whole session: make it unique.
    send(page, f"Hello {uuid.uuid4().hex} sim:status=400 sim:times=1 sim:tokens=8")
    failed = finished_answer(page, "error")
    failed_id = failed.get_attribute("data-message-id")
    failed = page.locator(f'[data-message-id="{failed_id}"]')
    expect(failed.locator(".message-error")).to_be_visible()
    retry = failed.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    page.screenshot(path=tmp_path / "failed-with-retry.png")

    retry.click()

    # The new answer is a second version in the failed one's place, not a bubble below it.
    answer = finished_answer(page, "complete")
    assert bubble_text(answer)
    expect(page.locator(".message--assistant")).to_have_count(1)
    expect(answer.locator(".message-version")).to_have_text("2 / 2")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    page.screenshot(path=tmp_path / "retried.png")
    saved = orm(lambda: list(Message.objects.filter(conversation__owner=user)))
    assert [(m.role, m.status) for m in saved] == [
        ("user", "complete"),
        ("assistant", "error"),
        ("assistant", "complete"),
    ]
    assert saved[1].parent_id == saved[2].parent_id == saved[0].id
    assert saved[1].content == ""
    assert plain(saved[2].content) == bubble_text(answer)

    # The failed one is still there, one click away, as it was.
    answer.get_by_role("button", name="Previous version").click()
    expect(failed.locator(".message-status")).to_have_text("Failed")
    expect(failed.locator(".message-version")).to_have_text("1 / 2")
    expect(page.locator(".message--assistant")).to_have_count(1)
    orm_until(lambda: Conversation.objects.get(owner=user).leaf_id == saved[1].id)

    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message")).to_have_count(2)
    expect(failed.locator(".message-status")).to_have_text("Failed")
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    assert problems == []


def test_interrupted_answer_is_shown_with_retry(page: Page, user: User, tmp_path: Path) -> None:
    def interrupted_conversation() -> tuple[Conversation, Message]:
        conversation = Conversation.objects.create(owner=user, title="Cut short")
        asked = timezone.now() - timedelta(minutes=1)
        question = Message.objects.create(
            conversation=conversation,
            role=Message.Role.USER,
            content="Tell me about rivers sim:tokens=12",
            created_at=asked,
        )
        answer = Message.objects.create(
            conversation=conversation,
            parent=question,
            role=Message.Role.ASSISTANT,
            status=Message.Status.INTERRUPTED,
            content="Rivers begin as",
            error=INTERRUPTED_MESSAGE,
            created_at=asked + timedelta(seconds=1),
        )
        return conversation, answer

    conversation, interrupted = orm(interrupted_conversation)
    page.goto(f"/c/{conversation.id}/")
    log_in(page, user.username)
    wait_until_connected(page)

    bubble = page.locator(f'[data-message-id="{interrupted.id}"]')
    expect(bubble.locator(".message-content")).to_have_text("Rivers begin as")
    expect(bubble.locator(".message-status")).to_have_text("Interrupted")
    # The server's explanation, as a notice rather than an error.
    expect(bubble.locator(".message-notice")).to_have_text(INTERRUPTED_MESSAGE)
    expect(bubble.locator(".message-error")).to_have_count(0)
    retry = bubble.get_by_role("button", name="Retry")
    expect(retry).to_be_enabled()
    page.screenshot(path=tmp_path / "interrupted.png")

    retry.click()

    answer = finished_answer(page, "complete")
    expect(page.locator(".message--assistant")).to_have_count(1)
    expect(answer.locator(".message-version")).to_have_text("2 / 2")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    saved = orm(lambda: list(Message.objects.filter(conversation=conversation)))
    assert [(m.role, m.status) for m in saved] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("assistant", "complete"),
    ]
    assert saved[1].content == "Rivers begin as"
    assert plain(saved[2].content) == bubble_text(answer)
