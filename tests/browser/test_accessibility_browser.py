"""The site with a keyboard and a screen reader, in real Chromium: axe-core finds nothing on
any page in either theme, skip links lead past the header and the list of conversations,
and the landmarks say where the chat, the list and the account links are.
"""

from pathlib import Path
from typing import Literal

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from streaming.models import Conversation
from tests.support.axe import axe_violations
from tests.support.browser import (
    CHAT_URL,
    composer,
    finished_answer,
    log_in,
    open_new_chat,
    orm,
    send,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)

# More than the sidebar's first page (50): what a keyboard would walk through without them.
MANY = 60


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_passes_axe_in_both_themes(
    page: Page, user: User, theme: Literal["light", "dark"], tmp_path: Path
) -> None:
    page.emulate_media(color_scheme=theme)
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        found[name] = axe_violations(page)
        page.screenshot(path=tmp_path / f"{name}-{theme}.png", full_page=True)

    page.goto("/login/")
    check("login")
    log_in(page, user.username)
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
    check("list, empty")
    page.goto("/usage/")
    check("usage, empty")
    open_new_chat(page, user.username)
    check("new chat")
    send(page, "Show me everything sim:markdown=1 sim:rate=0")
    expect(page).to_have_url(CHAT_URL)
    wait_until_connected(page)
    finished_answer(page, "complete")
    check("conversation")
    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message--assistant .message-content table")).to_be_visible()
    check("conversation reloaded")
    page.goto("/")
    expect(page.locator("#conversation-list .conversation-item")).to_have_count(1)
    check("list")
    page.goto("/?q=rich")
    expect(page.locator(".search-hit")).to_have_count(1)
    check("search")
    page.goto("/settings/")
    check("settings")
    page.goto("/usage/")
    expect(page.locator("#usage-table")).to_be_visible()
    check("usage")
    page.goto("/password/")
    check("password")

    broken = [f"{name}: {rule}" for name, rules in found.items() for rule in rules]
    assert broken == [], "\n".join(broken)


def many_conversations(user: User) -> Conversation:
    """MANY conversations of ``user``; the newest, which the list shows first."""

    def create() -> Conversation:
        for number in range(MANY):
            newest = Conversation.objects.create(owner=user, title=f"Conversation {number}")
        return newest

    return orm(create)


def tab_to(page: Page, target: Locator, most: int) -> int:
    """Press Tab until ``target`` has the focus, at most ``most`` times: how many it took."""
    for presses in range(1, most + 1):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return presses
    raise AssertionError(f"{most} presses of Tab never reached {target}")


def test_skip_links_lead_past_the_conversations_and_back_to_them(page: Page, user: User) -> None:
    conversation = many_conversations(user)
    page.goto("/login/")
    log_in(page, user.username)
    page.goto(f"/c/{conversation.id}/")
    wait_until_connected(page)
    expect(page.locator("#conversation-list .conversation-item")).to_have_count(50)
    # The landmarks: the chat is the page's one main, the list a navigation beside it.
    main = page.get_by_role("main")
    expect(main).to_have_count(1)
    expect(main).to_have_id("chat")
    sidebar = page.get_by_role("complementary", name="Conversations")
    expect(sidebar.get_by_role("navigation", name="Conversation list")).to_be_visible()
    assert sidebar.evaluate("el => el.closest('main') === null")
    expect(page.get_by_role("banner").get_by_role("navigation", name="Account")).to_be_visible()

    # The reader starts in the composer (autofocus); past its end, Tab comes back to the top
    # of the page, where the skip link is the first stop, seen once it has the focus.
    expect(composer(page)).to_be_focused()
    skip = page.get_by_role("link", name="Skip to chat")
    to_sidebar = page.get_by_role("link", name="Skip to conversations")
    expect(skip).not_to_be_in_viewport()
    assert tab_to(page, skip, 5) <= 3
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Rename this conversation")).to_be_focused()

    # From the chat's first control through the chat and back to the top, the skip link's
    # sibling is a few presses away, not 50 conversations: it leads into the list.
    assert tab_to(page, to_sidebar, 20) < 20
    expect(to_sidebar).to_be_in_viewport()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(sidebar.get_by_role("button", name="New chat")).to_be_focused()


def test_other_pages_start_with_a_skip_link_to_their_main_content(page: Page, user: User) -> None:
    page.goto("/login/")
    log_in(page, user.username)
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
    for path, first in [
        ("/", page.get_by_role("button", name="New chat")),
        ("/settings/", page.get_by_label("Default system prompt")),
    ]:
        page.goto(path)
        skip = page.get_by_role("link", name="Skip to content")
        page.keyboard.press("Tab")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        expect(page.get_by_role("main").locator(first)).to_be_focused()
