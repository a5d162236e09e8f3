"""Reading comfort on the chat page, in real Chromium against a real daphne and the simulator.

One test per thing a reader gets (streaming/static/streaming/chat-comfort.js): each
message's time.
"""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from streaming.models import Conversation, Message
from tests.test_browser import (  # noqa: F401 - `page` and `server` are fixtures, used by name
    finished_answer,
    log_in,
    orm,
    page,
    send,
    server,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)

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
