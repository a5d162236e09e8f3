"""A conversation longer than a frame, opened in Chromium: its snapshot comes in parts (none
over FRAME_BUDGET_BYTES, daphne's 1 MiB far off), the page joins them, stays connected and
streams the next answer. Before parts, such a socket closed with 1011 and the page said
"Reconnecting…" for ever."""

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Conversation, Message
from tests.support.browser import (
    composer,
    finished_answer,
    log_in,
    orm,
    script_problems,
    wait_until_connected,
)
from tests.support.long import write_chain

pytestmark = pytest.mark.django_db(transaction=True)

CJK_MESSAGE = ("長い会話の文字" * 5000)[: settings.MAX_MESSAGE_CHARS]


def long_conversation(user: User) -> Conversation:
    """Three turns of the longest message a person may send, in a script JSON escapes, each
    answered at as much length: 1.15 MB as JSON, over daphne's 1 MiB if it went whole."""
    conversation = Conversation.objects.create(owner=user, title="Long")
    parent = None
    for turn in range(3):
        question = Message.objects.create(
            conversation=conversation,
            role=Message.Role.USER,
            content=f"{turn}{CJK_MESSAGE}"[: len(CJK_MESSAGE)],
            parent=parent,
        )
        parent = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            content=f"answer {turn}: {CJK_MESSAGE}",
            status=Message.Status.COMPLETE,
            parent=question,
        )
    conversation.leaf = parent
    conversation.save(update_fields=["leaf"])
    return conversation


def test_a_conversation_longer_than_a_frame_opens_connected_and_streams(
    page: Page, user: User
) -> None:
    sizes: list[int] = []
    types: list[str] = []

    def watch(ws: Any) -> None:
        def received(payload: str | bytes) -> None:
            sizes.append(len(payload.encode() if isinstance(payload, str) else payload))
            types.append(payload[:40] if isinstance(payload, str) else "binary")

        ws.on("framereceived", received)

    page.on("websocket", watch)
    problems = script_problems(page)
    conversation = orm(lambda: long_conversation(user))
    page.goto("/login/")
    log_in(page, user.username)
    page.goto(f"/c/{conversation.id}/")
    wait_until_connected(page)

    # A window of ~130 kB of text: the newest turn; the others come when scrolled to.
    users = page.locator(".message--user")
    expect(users).to_have_count(1)
    for count in (2, 3):
        page.evaluate("document.getElementById('messages-scroller').scrollTop = 0")
        expect(users).to_have_count(count)
    first = page.locator(".message--user .message-content").first
    assert len(first.text_content() or "") >= len(CJK_MESSAGE) - 1
    composer(page).fill("still here? sim:tokens=20")
    composer(page).press("Enter")
    expect(finished_answer(page, "complete")).to_be_visible()
    expect(page.locator(".message--assistant")).to_have_count(4)

    assert sum(1 for t in types if t.startswith('{"type": "part"')) >= 2  # 385 kB windows
    assert max(sizes) <= settings.FRAME_BUDGET_BYTES
    assert orm(lambda: Message.objects.filter(conversation=conversation).count()) == 8
    assert problems == []
    expect(page.locator("#chat")).to_have_attribute("data-connection", "open")


def test_scrolling_up_loads_older_messages_keeping_the_readers_place(
    page: Page, user: User
) -> None:
    problems = script_problems(page)
    conversation = orm(lambda: Conversation.objects.create(owner=user, title="Years"))
    messages = orm(lambda: write_chain(conversation, 300, 2000))
    page.goto("/login/")
    log_in(page, user.username)
    page.goto(f"/c/{conversation.id}/")
    wait_until_connected(page)
    bubbles = page.locator(".message")
    shown = bubbles.count()
    assert 10 < shown < 300  # a window: ~130,000 characters of 600,000

    first = page.locator(f'[data-message-id="{messages[-shown].id}"]')
    # At the top: the button comes into view and asks by itself (its reply comes later,
    # after this script has measured where the first message is).
    y_before = page.evaluate(
        """id => {
            document.getElementById("messages-scroller").scrollTop = 0;
            const first = document.querySelector(`[data-message-id="${id}"]`);
            return first.getBoundingClientRect().top;
        }""",
        str(messages[-shown].id),
    )
    expect(bubbles).not_to_have_count(shown)
    # The older messages went above the reader, who still sees what they were reading.
    box = first.bounding_box()
    assert box is not None
    assert abs(box["y"] - y_before) < 3
    assert page.evaluate("document.getElementById('messages-scroller').scrollTop") > 1000

    for _ in range(10):  # read on up to the first message
        if page.locator(f'[data-message-id="{messages[0].id}"]').count():
            break
        held = bubbles.count()  # before scrolling: the reply may come at once
        page.evaluate("document.getElementById('messages-scroller').scrollTop = 0")
        page.wait_for_function("n => document.querySelectorAll('.message').length > n", arg=held)
    expect(page.locator(f'[data-message-id="{messages[0].id}"]')).to_be_visible()
    expect(page.locator("#messages-older")).to_be_hidden()
    expect(bubbles).to_have_count(300)
    assert problems == []
