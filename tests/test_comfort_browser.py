"""Reading comfort on the chat page, in real Chromium against a real daphne and the simulator.

One test per thing a reader gets (streaming/static/streaming/chat-comfort.js): each
message's time, and the wait before a retry said in words.
"""

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, WebSocketRoute, expect

from streaming.models import Conversation, Message
from tests.test_browser import (  # noqa: F401 - `page` and `server` are fixtures, used by name
    bubble_text,
    finished_answer,
    log_in,
    open_new_chat,
    orm,
    page,
    script_problems,
    send,
    server,
    streaming_answer,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)

# An answer that streams for about two seconds.
TWO_SECONDS = "sim:tokens=40 sim:rate=20"
# A date as a browser writes it, in one language or another: "Mar 4", "4 Mar", "Dec 31, 2024".
DATE = r"^([A-Z][a-z]{2} \d{1,2}|\d{1,2} [A-Z][a-z]{2})(,? \d{4})?$"
# What a message's <time> is made of, apart from its text (which changes with the clock).
TIME_MARKUP = "els => els.map(e => [e.outerHTML.replace(/>.*<\\/time>$/, '>'), e.title])"


def open_conversation(chat: Page, user: User, conversation: Conversation) -> None:
    chat.goto("/login/")
    log_in(chat, user.username)
    chat.goto(f"/c/{conversation.id}/")
    wait_until_connected(chat)


def test_each_message_shows_its_time_relative_with_the_exact_time_on_hover(
    page: Page,  # noqa: F811 - the fixture imported above, asked for by name
    user: User,
    tmp_path: Path,
) -> None:
    def conversation_of_times() -> tuple[Conversation, list[Message]]:
        conversation = Conversation.objects.create(owner=user, title="Times")
        now = timezone.now()
        made = []
        for role, ago in [
            ("user", timedelta(days=40)),
            ("assistant", timedelta(days=1)),
            ("user", timedelta(minutes=3, seconds=5)),
        ]:
            made.append(
                Message.objects.create(
                    conversation=conversation,
                    role=role,
                    content=f"said {ago} ago",
                    status="complete",
                    created_at=now - ago,
                )
            )
        return conversation, made

    # A clock the test moves on: the page's timers run only when told to, or as time passes.
    page.clock.install()
    conversation, made = orm(conversation_of_times)
    open_conversation(page, user, conversation)
    times = page.locator(".message .message-meta time.message-time")
    expect(times).to_have_count(3)
    old, yesterday, recent = (times.nth(n) for n in range(3))
    expect(recent).to_have_text("3 min ago")
    expect(yesterday).to_have_text("yesterday")
    # Older than yesterday: the date, as the browser writes one ("Mar 4" or "4 Mar"…).
    expect(old).to_have_text(re.compile(DATE))

    # The exact time is the element's machine-readable datetime and its hover title.
    for element, message in zip([old, yesterday, recent], made, strict=True):
        stamp = element.get_attribute("datetime")
        assert stamp is not None
        when = page.evaluate("s => new Date(s).getTime()", stamp)
        assert when == int(message.created_at.timestamp() * 1000)
        title = element.get_attribute("title") or ""
        expected = page.evaluate(
            "s => new Date(s).toLocaleString(undefined, {dateStyle: 'full', timeStyle: 'medium'})",
            stamp,
        )
        assert title == expected
        assert str(message.created_at.year) in title
        assert re.search(r"\d{1,2}:\d{2}:\d{2}", title), title
    recent.hover()
    page.screenshot(path=tmp_path / "times.png")

    # A message sent now, and its answer, say so, in the same markup after a reload.
    send(page, "What time is it? sim:tokens=5")
    answer = finished_answer(page, "complete")
    expect(page.locator(".message--user").last.locator("time")).to_have_text("just now")
    expect(answer.locator("time.message-time")).to_have_text("just now")
    live = page.eval_on_selector_all(".message time", TIME_MARKUP)
    page.reload()
    wait_until_connected(page)
    expect(times).to_have_count(5)
    expect(times.nth(4)).to_have_text("just now")
    assert page.eval_on_selector_all(".message time", TIME_MARKUP) == live

    # Once a minute the relative times are drawn again.
    page.clock.fast_forward("02:00")
    expect(recent).to_have_text("5 min ago")
    expect(times.nth(4)).to_have_text("2 min ago")
    expect(yesterday).to_have_text("yesterday")


def test_wait_before_a_retry_is_said_in_words_counting_down(
    page: Page,  # noqa: F811 - the fixture imported above, asked for by name
    user: User,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    # `sim:times` counts per message text for the whole session: make it unique.
    busy = f"Busy? {uuid.uuid4().hex} sim:status=429 sim:retry_after=3 sim:times=1"
    send(page, f"{busy} {TWO_SECONDS}")
    expect(streaming_answer(page)).to_have_count(1)
    message_id = streaming_answer(page).get_attribute("data-message-id")
    bubble = page.locator(f'[data-message-id="{message_id}"]')
    wait = bubble.locator(".message-wait")
    expect(wait).to_have_text("Rate limited by the provider, retrying in 3 s")
    expect(bubble.locator(".typing")).to_be_visible()
    page.screenshot(path=tmp_path / "retry-wait.png")
    expect(wait).to_have_text("Rate limited by the provider, retrying in 2 s")
    expect(wait).to_have_text("Rate limited by the provider, retrying in 1 s")

    # Gone with the first words of the answer, which then streams on as usual.
    expect(wait).to_have_count(0)
    expect(bubble).to_have_attribute("data-status", "streaming")
    expect(bubble.locator(".message-content")).not_to_be_empty()
    finished_answer(page, "complete")
    expect(wait).to_have_count(0)
    assert "retrying" not in bubble_text(bubble)
    expect(page.locator(".message--assistant")).to_have_count(1)
    assert problems == []


def test_lost_retrying_frame_leaves_only_the_dots_and_the_answer_whole(
    page: Page,  # noqa: F811 - the fixture imported above, asked for by name
    user: User,
) -> None:
    problems = script_problems(page)
    dropped: list[dict[str, Any]] = []

    def route(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame["type"] == "retrying":
                dropped.append(frame)
            else:
                ws.send(message)

        upstream.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/conversations/"), route)
    open_new_chat(page, user.username)
    send(page, f"Flaky {uuid.uuid4().hex} sim:status=503 sim:retry_after=2 sim:times=1")
    expect(streaming_answer(page).locator(".typing")).to_be_visible()

    answer = finished_answer(page, "complete")
    assert [frame["reason"] for frame in dropped] == ["The provider is unavailable (503)"]
    assert bubble_text(answer)
    expect(page.locator(".message-wait")).to_have_count(0)
    saved = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert (saved.status, bubble_text(answer)) == ("complete", " ".join(saved.content.split()))
    assert problems == []
