"""Reading comfort on the chat page, in real Chromium against a real daphne and the simulator.

One test per thing a reader gets (streaming/static/streaming/chat/comfort.js): the "Jump to
latest" button, each message's time, the "still answering" notice going away, the wait
before a retry said in words, the Retry button brought into view, focus back in the
composer, and finished answers read out by a polite live region.
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
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from streaming.models import Conversation, Message
from tests.support.browser import (
    SLOW_ANSWER,
    bubble_text,
    composer,
    finished_answer,
    log_in,
    open_new_chat,
    open_saved_chat,
    orm,
    plain,
    script_problems,
    send,
    streaming_answer,
    wait_for_more_text,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)

# An answer that streams for about two seconds.
TWO_SECONDS = "sim:tokens=40 sim:rate=20"
STILL_ANSWERING = "The assistant is still answering. Wait for it to finish, or stop it."
# A paragraph long enough that a few of them fill the message list past its height.
PARAGRAPH = " ".join(["A stored line of an earlier exchange, to scroll past."] * 12)
# A date as a browser writes it, in one language or another: "Mar 4", "4 Mar", "Dec 31, 2024".
DATE = r"^([A-Z][a-z]{2} \d{1,2}|\d{1,2} [A-Z][a-z]{2})(,? \d{4})?$"
# What a message's <time> is made of, apart from its text (which changes with the clock).
TIME_MARKUP = "els => els.map(e => [e.outerHTML.replace(/>.*<\\/time>$/, '>'), e.title])"


def stored_conversation(user: User, exchanges: int = 4) -> Conversation:
    """A conversation with `exchanges` long questions and answers, an hour old."""

    def create() -> Conversation:
        conversation = Conversation.objects.create(owner=user, title="Long ago")
        asked = timezone.now() - timedelta(hours=1)
        parent = None
        for n in range(exchanges):
            for role in ("user", "assistant"):
                parent = Message.objects.create(
                    conversation=conversation,
                    parent=parent,
                    role=role,
                    content=f"{role} {n}: {PARAGRAPH}",
                    created_at=asked + timedelta(seconds=len(role) + 10 * n),
                )
        return conversation

    return orm(create)


def open_conversation(chat: Page, user: User, conversation: Conversation) -> None:
    chat.goto("/login/")
    log_in(chat, user.username)
    chat.goto(f"/c/{conversation.id}/")
    wait_until_connected(chat)


def at_bottom(chat: Page) -> bool:
    """Whether the message list is scrolled to its end (as chat/view.js judges it)."""
    return bool(
        chat.eval_on_selector(
            "#messages-scroller", "s => s.scrollHeight - s.scrollTop - s.clientHeight <= 48"
        )
    )


def scroll_to_top(chat: Page) -> None:
    chat.eval_on_selector("#messages-scroller", "s => { s.scrollTop = 0; }")


def jump_button(chat: Page) -> Locator:
    return chat.get_by_role("button", name="Jump to latest")


def test_jump_to_latest_shows_while_scrolled_up_and_brings_the_reader_down(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    conversation = stored_conversation(user)
    open_conversation(page, user, conversation)
    assert at_bottom(page)
    jump = jump_button(page)
    expect(jump).to_be_hidden()

    # At the bottom, a streaming answer is followed down and no button is needed.
    send(page, f"Tell me more {SLOW_ANSWER}")
    wait_for_more_text(page, 200)
    expect(jump).to_be_hidden()
    assert at_bottom(page)

    # Scrolled up while it streams: the button floats above the composer.
    scroll_to_top(page)
    expect(jump).to_be_visible()
    expect(jump).to_have_text("Jump to latest ↓")
    jump_box = jump.bounding_box()
    composer_box = page.locator("#composer").bounding_box()
    assert jump_box is not None
    assert composer_box is not None
    assert jump_box["y"] + jump_box["height"] <= composer_box["y"]
    page.screenshot(path=tmp_path / "jump-to-latest.png")
    assert not at_bottom(page)  # the answer did not pull the reader back down
    # Scrolling back down by hand hides it too; up again, it is back.
    page.eval_on_selector("#messages-scroller", "s => { s.scrollTop = s.scrollHeight; }")
    expect(jump).to_be_hidden()
    scroll_to_top(page)
    expect(jump).to_be_visible()

    jump.click()
    expect(jump).to_be_hidden()
    assert at_bottom(page)
    expect(composer(page)).to_be_focused()
    # And the page follows the answer down again from there.
    shown = len(bubble_text(streaming_answer(page)))
    wait_for_more_text(page, shown + 100)
    assert at_bottom(page)
    page.get_by_role("button", name="Stop", exact=True).click()
    finished_answer(page, "cancelled")

    # Scrolled up with nothing streaming: nothing new below, no button.
    scroll_to_top(page)
    expect(page.locator("#messages-scroller")).to_have_js_property("scrollTop", 0)
    expect(jump).to_be_hidden()
    # Then new content arrives below (from another tab): the button shows, and stays once
    # that answer has ended, until the reader goes down.
    other = page.context.new_page()
    other.goto(page.url)
    wait_until_connected(other)
    send(other, "From another tab sim:tokens=20")
    finished_answer(other, "complete")
    expect(page.locator(".message--assistant")).to_have_count(6)
    finished_answer(page, "complete")
    expect(jump).to_be_visible()
    jump.press("Enter")
    expect(jump).to_be_hidden()
    assert at_bottom(page)
    assert problems == []


def test_the_list_says_each_conversations_time_as_the_messages_do(
    page: Page,
    user: User,
) -> None:
    def conversations() -> None:
        Conversation.objects.create(owner=user, title="Fresh")
        earlier = Conversation.objects.create(owner=user, title="Earlier")
        Conversation.objects.filter(pk=earlier.pk).update(
            updated_at=timezone.now() - timedelta(minutes=3, seconds=5)
        )

    orm(conversations)
    page.goto("/login/")
    log_in(page, user.username)
    times = page.locator("#conversation-list .conversation-time time")
    expect(times).to_have_text(["just now", "3 min ago"])
    # The exact time on hover, as a message's.
    expect(times.nth(1)).to_have_attribute("title", re.compile(r"\d{1,2}:\d{2}:\d{2}"))


def test_each_message_shows_its_time_relative_with_the_exact_time_on_hover(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    def conversation_of_times() -> tuple[Conversation, list[Message]]:
        conversation = Conversation.objects.create(owner=user, title="Times")
        now = timezone.now()
        made: list[Message] = []
        for role, ago in [
            ("user", timedelta(days=40)),
            ("assistant", timedelta(days=1)),
            ("user", timedelta(minutes=3, seconds=5)),
        ]:
            made.append(
                Message.objects.create(
                    conversation=conversation,
                    parent=made[-1] if made else None,
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


def test_still_answering_notice_goes_away_when_the_answer_ends(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    open_new_chat(page, user.username)
    send(page, "A few words sim:tokens=60 sim:rate=20")
    expect(streaming_answer(page)).to_have_count(1)
    # Enter while it answers: the message is kept, and the page says why it was not sent.
    send(page, "And the next question")
    alert = page.locator("#composer-alert")
    expect(alert).to_have_text(STILL_ANSWERING)
    page.screenshot(path=tmp_path / "still-answering.png")

    finished_answer(page, "complete")
    expect(alert).to_have_text("")
    expect(composer(page)).to_have_value("And the next question")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_wait_before_a_retry_is_said_in_words_counting_down(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    # Saved already: a new chat's first answer may wait before its page has a socket.
    open_saved_chat(page, user)
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
    page: Page,
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
    open_saved_chat(page, user)
    send(page, f"Flaky {uuid.uuid4().hex} sim:status=503 sim:retry_after=2 sim:times=1")
    expect(streaming_answer(page).locator(".typing")).to_be_visible()

    answer = finished_answer(page, "complete")
    assert [frame["reason"] for frame in dropped] == ["The provider is unavailable (503)"]
    assert bubble_text(answer)
    expect(page.locator(".message-wait")).to_have_count(0)
    saved = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert (saved.status, bubble_text(answer)) == ("complete", plain(saved.content))
    assert problems == []


def test_retry_button_is_brought_into_view_when_an_answer_fails(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    conversation = stored_conversation(user)
    open_conversation(page, user, conversation)

    # At the bottom: the failed answer's Retry lands below what the list showed.
    send(page, f"Fail {uuid.uuid4().hex} sim:status=400")
    failed = finished_answer(page, "error")
    retry = failed.get_by_role("button", name="Retry")
    expect(retry).to_be_in_viewport(ratio=1)
    page.screenshot(path=tmp_path / "retry-in-view.png")

    # Scrolled up to read while the next answer streams, then it fails: Retry comes to the
    # reader, and nothing else moves the page.
    send(page, "Fail later sim:tokens=200 sim:rate=40 sim:fault=error sim:after=60")
    wait_for_more_text(page, 50)
    scroll_to_top(page)
    expect(page.locator("#messages-scroller")).to_have_js_property("scrollTop", 0)
    failed = finished_answer(page, "error")
    retry = failed.get_by_role("button", name="Retry")
    expect(retry).to_be_in_viewport(ratio=1)
    page.screenshot(path=tmp_path / "retry-in-view-after-scrolling-up.png")


def test_focus_returns_to_the_composer_after_send_stop_and_retry(
    page: Page,
    user: User,
) -> None:
    open_new_chat(page, user.username)
    box = composer(page)
    send_button = page.get_by_role("button", name="Send")
    stop = page.get_by_role("button", name="Stop", exact=True)

    # Send by click, Stop by click.
    box.fill(f"First {SLOW_ANSWER}")
    send_button.click()
    expect(box).to_be_focused()
    wait_for_more_text(page, 20)
    stop.click()
    failed = finished_answer(page, "cancelled")
    expect(box).to_be_focused()

    # Retry by click.
    failed.get_by_role("button", name="Retry").click()
    expect(box).to_be_focused()
    expect(streaming_answer(page)).to_have_count(1)

    # Stop by keyboard: Space on the focused button, then Esc from elsewhere on the page.
    stop.focus()
    stop.press(" ")
    stopped = finished_answer(page, "cancelled")
    expect(box).to_be_focused()

    # Retry by keyboard, then Esc stops it from the title.
    stopped.get_by_role("button", name="Retry").press("Enter")
    expect(box).to_be_focused()
    expect(streaming_answer(page)).to_have_count(1)
    wait_for_more_text(page, 20)
    page.locator("#chat-title").click()
    expect(box).not_to_be_focused()
    page.keyboard.press("Escape")
    finished_answer(page, "cancelled")
    expect(box).to_be_focused()

    # Send by keyboard on the button.
    box.fill("Last one sim:tokens=5")
    send_button.press("Enter")
    expect(box).to_be_focused()
    expect(page.locator(".message--user")).to_have_count(2)
    finished_answer(page, "complete")


def test_finished_answers_are_read_once_by_a_polite_live_region(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    region = page.locator("#chat-announcer")
    expect(region).to_have_attribute("aria-live", "polite")
    # Visually hidden, but in the page for screen readers.
    expect(region).to_be_attached()
    box = region.bounding_box()
    assert box is not None
    assert max(box["width"], box["height"]) <= 1
    # Every change to its text, from now on.
    page.evaluate(
        """() => {
            window.announced = [];
            const region = document.getElementById("chat-announcer");
            new MutationObserver(() => window.announced.push(region.textContent)).observe(
                region, {childList: true, characterData: true, subtree: true});
        }"""
    )

    send(page, "Show me everything sim:markdown=1 sim:rate=100")
    expect(streaming_answer(page).locator("h2")).to_have_count(1)
    assert page.evaluate("window.announced") == []  # nothing while it streams
    finished_answer(page, "complete")
    expect(region).not_to_have_text("")
    said = region.text_content() or ""
    # The rendered text, read as plain words: not the Markdown source, not the page's
    # own labels (the code blocks' language and Copy buttons).
    assert said.startswith("A rich answer Some bold, some emphasis, struck text and inline_code();")
    assert "Language Typing Since Python dynamic 1991" in said
    assert 'return f"Hello, {name}!"' in said
    for source in ("##", "**", "```", "](", "$$", "Copy"):
        assert source not in said
    assert page.evaluate("window.announced") == [said]

    # A long answer is cut to a sane length; a failed one says so.
    send(page, "Go on at length sim:tokens=600 sim:rate=0")
    expect(page.locator(".message--assistant")).to_have_count(2)
    finished_answer(page, "complete")
    expect(region).not_to_have_text(said)
    long_said = region.text_content() or ""
    assert 900 < len(long_said) <= 1000
    assert long_said.endswith("…")
    send(page, f"Break {uuid.uuid4().hex} sim:status=400")
    failed = finished_answer(page, "error")
    error = failed.locator(".message-error").text_content() or ""
    expect(region).to_have_text(f"The answer failed. {error}")
    assert len(page.evaluate("window.announced")) == 3
    page.screenshot(path=tmp_path / "announced.png")

    # Answers a snapshot brings are not read out: only the ones that end while you wait.
    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message--assistant")).to_have_count(3)
    expect(page.locator("#chat-announcer")).to_have_text("")
    assert problems == []
