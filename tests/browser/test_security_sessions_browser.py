"""Sessions that end, as a person sees them: the chat page in real Chromium, a real daphne.

Two tabs of one browser share its cookies. Logging out in one signs the chat page in the
other out at once: it says so, offers the login page, and does not reconnect in a loop.
Changing the password in one keeps the chat page in the other signed in: its socket,
opened with the old session key, ends, and it reconnects with the browser's new one.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, WebSocket, expect

from streaming.models import Message
from tests.support.browser import (
    CHAT_URL,
    SLOW_ANSWER,
    bubble_text,
    composer,
    finished_answer,
    log_in,
    open_new_chat,
    orm,
    plain,
    received_frames,
    script_problems,
    send,
    wait_for_more_text,
    wait_until_connected,
)
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SIGNED_OUT = "You were signed out. Sign in again to continue."
NEW_PASSWORD = "a different horse, stapled"


def sockets_opened(tab: Page) -> list[WebSocket]:
    """Every WebSocket ``tab`` opens from now on, across navigations."""
    opened: list[WebSocket] = []
    tab.on("websocket", lambda ws: opened.append(ws))
    return opened


@dataclass
class ChatTab:
    """The chat page, and what it did since it was opened."""

    sockets: list[WebSocket]
    frames: list[dict[str, Any]]
    problems: list[str]

    def session_ended_frames(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "error" and f["code"] == "session_ended"]


def open_chat_mid_answer(tab: Page, user: User) -> ChatTab:
    """Log in, open a new chat and start a 10 s answer in it."""
    chat = ChatTab(sockets_opened(tab), received_frames(tab), script_problems(tab))
    open_new_chat(tab, user.username)
    send(tab, f"Tell me a long story {SLOW_ANSWER}")
    wait_for_more_text(tab, 0)
    return chat


def saved_answer_shown(tab: Page, user: User) -> None:
    """The answer, which ran on through it all, ends complete on the page, as it was saved."""
    text = bubble_text(finished_answer(tab, "complete"))
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.COMPLETE
    assert plain(answer.content) == text


def test_logging_out_in_another_tab_signs_the_chat_page_out(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    chat = open_chat_mid_answer(page, user)
    chat_path = re.sub(r"^https?://[^/]+", "", page.url)

    other_tab = page.context.new_page()
    other_tab.goto("/")
    other_tab.get_by_role("button", name="Log out").click()
    expect(other_tab.get_by_role("heading", name="Log in")).to_be_visible()

    status = page.locator("#connection-status")
    expect(status).to_contain_text(SIGNED_OUT)
    page.screenshot(path=tmp_path / "signed-out.png")
    expect(page.locator("#chat")).to_have_attribute("data-connection", "closed")
    expect(page).to_have_url(CHAT_URL)  # still here: nothing typed is lost
    expect(composer(page)).to_be_disabled()
    sign_in = status.get_by_role("link", name="Sign in")
    expect(sign_in).to_have_attribute("href", f"/login/?next={quote(chat_path, safe='')}")
    # The socket that worked, then one reconnect that was refused: no loop.
    assert len(chat.sockets) == 2
    assert [s.is_closed() for s in chat.sockets] == [True, True]
    assert len(chat.session_ended_frames()) == 1

    # The way back: log in again, and the answer (which ran on and was saved) is there.
    sign_in.click()
    log_in(page, user.username)
    expect(page).to_have_url(re.compile(re.escape(chat_path) + "$"))
    wait_until_connected(page)
    saved_answer_shown(page, user)
    assert len(chat.sockets) == 3
    assert chat.problems == []


def test_changing_the_password_in_another_tab_keeps_the_chat_page_signed_in(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    chat = open_chat_mid_answer(page, user)

    other_tab = page.context.new_page()
    other_tab.goto("/password/")
    other_tab.get_by_label("Old password").fill(PASSWORD)
    other_tab.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    other_tab.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    # The socket of the old session key ends; the page reconnects with the new one.
    with page.expect_websocket():
        other_tab.get_by_role("button", name="Change password").click()
        expect(other_tab.get_by_role("heading", name="Password changed")).to_be_visible()
    wait_until_connected(page)
    assert len(chat.sockets) == 2
    saved_answer_shown(page, user)
    page.screenshot(path=tmp_path / "still-signed-in.png")
    expect(page.locator("#connection-status")).not_to_contain_text("signed out")
    assert len(chat.session_ended_frames()) == 1
    # Still signed in: the page can send.
    send(page, "And one more sim:tokens=5")
    expect(page.locator(".message--assistant")).to_have_count(2)
    finished_answer(page, "complete")
    assert chat.problems == []
