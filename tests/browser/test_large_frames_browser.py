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

pytestmark = pytest.mark.django_db(transaction=True)

CJK_MESSAGE = ("長い会話の文字" * 5000)[: settings.MAX_MESSAGE_CHARS]


def long_conversation(user: User) -> Conversation:
    """Three turns of the longest message a person may send, in a script JSON escapes, each
    answered at as much length: a snapshot of 1.15 MB, over daphne's 1 MiB."""
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

    expect(page.locator(".message--user")).to_have_count(3)
    first = page.locator(".message--user .message-content").first
    assert len(first.text_content() or "") >= len(CJK_MESSAGE) - 1
    composer(page).fill("still here? sim:tokens=20")
    composer(page).press("Enter")
    expect(finished_answer(page, "complete")).to_be_visible()
    expect(page.locator(".message--assistant")).to_have_count(4)

    assert sum(1 for t in types if t.startswith('{"type": "part"')) >= 3  # 1.15 MB
    assert max(sizes) <= settings.FRAME_BUDGET_BYTES
    assert orm(lambda: Message.objects.filter(conversation=conversation).count()) == 8
    assert problems == []
    expect(page.locator("#chat")).to_have_attribute("data-connection", "open")
