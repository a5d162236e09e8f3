"""The README's screenshots, taken from a real conversation in Chromium, and checked.

Each picture is of a state the test first asserts, so a picture never shows a broken page.
They go to the test's temporary folder; `make screenshots` sets SCREENSHOTS_DIR to
docs/screenshots/ to refresh the committed ones.
"""

import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.browser import (
    finished_answer,
    log_in,
    open_new_chat,
    orm,
    script_problems,
    send,
    wait_until_connected,
)
from tests.support.providers import make_provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the pictures go: SCREENSHOTS_DIR if set, else the test's own folder."""
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_screenshots_of_a_rendered_answer_code_versions_a_phone_and_dark(
    page: Page,
    user: User,
    shots: Path,
) -> None:
    problems = script_problems(page)
    page.set_viewport_size({"width": 1200, "height": 900})
    open_new_chat(page, user.username)
    m = uuid.uuid4().hex[:6]
    send(page, f"Show me what you can render ({m}) sim:markdown=1 sim:rate=300")
    answer = finished_answer(page, "complete")
    content = answer.locator(".message-content")
    expect(content.locator("table")).to_have_count(1)
    expect(content.locator("pre code.hljs")).to_have_count(2)
    expect(content.locator("math")).not_to_have_count(0)

    # The answer, from its top, as a reader meets it.
    answer.evaluate("bubble => bubble.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)
    page.screenshot(path=shots / "answer.png")

    code = content.locator(".code-block").first
    code.scroll_into_view_if_needed()
    code.screenshot(path=shots / "code-block.png")

    # Two versions of the question, the second one shown, its switcher and actions in view.
    question = page.locator(".message--user").first
    question.hover()
    question.get_by_role("button", name="Edit this message").click()
    editor = question.get_by_role("textbox", name="Edit your message")
    editor.fill(f"Show me a short answer instead ({m}) sim:tokens=24")
    editor.press("Enter")
    edited = page.locator(".message--user").filter(has_text="short answer instead")
    expect(edited.locator(".message-version")).to_have_text("2 / 2")
    finished_answer(page, "complete")
    edited.hover()
    page.locator("#chat").screenshot(path=shots / "versions.png")

    # Back to the rich answer, on a phone-sized screen.
    edited.get_by_role("button", name="Previous version").click()
    expect(page.locator(".message--user .message-version")).to_have_text("1 / 2")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message--assistant .message-content table")).to_have_count(1)
    # No sideways scrolling of the page itself on a phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=shots / "phone.png")
    # The narrowest phones: the header's two rows still hold the title and the picker.
    page.set_viewport_size({"width": 320, "height": 640})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=shots / "phone-320.png")
    page.set_viewport_size({"width": 390, "height": 844})

    # The conversation list, as a phone shows it: a drawer over the chat.
    page.get_by_role("button", name="Chats").click()
    drawer = page.get_by_role("complementary", name="Conversations")
    expect(drawer).to_have_css("transform", "none")  # slid in
    page.screenshot(path=shots / "phone-drawer.png")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()

    # The rich answer again, under a dark system setting.
    page.set_viewport_size({"width": 1200, "height": 900})
    page.emulate_media(color_scheme="dark")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    answer.evaluate("bubble => bubble.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)
    page.screenshot(path=shots / "dark.png")
    assert problems == []


def test_screenshots_of_the_usage_page_and_the_export_menu(
    page: Page,
    user: User,
    shots: Path,
) -> None:
    problems = script_problems(page)
    page.set_viewport_size({"width": 1200, "height": 700})
    open_new_chat(page, user.username)
    send(page, "Plan a day in Porto sim:tokens=40 sim:rate=0")
    finished_answer(page, "complete")
    send(page, "And the evening? sim:tokens=25 sim:rate=0")
    expect(page.locator('.message--assistant[data-status="complete"]')).to_have_count(2)
    page.locator("#chat-export").get_by_text("Export").click()
    expect(page.locator("#chat-export").get_by_role("link", name="JSON")).to_be_visible()
    page.mouse.move(0, 0)
    page.screenshot(path=shots / "export-menu.png")

    page.goto("/usage/")
    expect(page.locator("#usage-table tbody tr")).to_have_count(1)
    page.screenshot(path=shots / "usage.png")
    assert problems == []


def test_screenshots_of_the_grouped_list_a_search_and_a_second_providers_answer(
    page: Page,
    user: User,
    second: SimulatorThread,
    shots: Path,
) -> None:
    problems = script_problems(page)
    page.set_viewport_size({"width": 1200, "height": 760})
    now = timezone.now()
    made = [
        ("Lisbon in three days", 0, "Start at the Castelo, then the trams down to Baixa."),
        ("Sourdough starter", 0, "Feed it twice a day at room temperature."),
        ("Quarterly report outline", 1, "Open with the numbers, then the three risks."),
        ("Trip budget", 3, "Lisbon hostels run about 30 euros a night in spring."),
        ("Learning Rust lifetimes", 12, "A reference may not outlive what it points to."),
    ]

    def add() -> None:
        for title, days_ago, answer in made:
            conversation = Conversation.objects.create(owner=user, title=title)
            question = Message.objects.create(conversation=conversation, role="user", content=title)
            Message.objects.create(
                conversation=conversation, parent=question, role="assistant", content=answer
            )
            # Today's a moment ago; the others at midday of their day, whatever the hour now.
            noon = timezone.localtime(now).replace(hour=12, minute=0, second=0, microsecond=0)
            when = now - timedelta(seconds=len(title)) if not days_ago else noon
            Conversation.objects.filter(pk=conversation.pk).update(
                updated_at=when - timedelta(days=days_ago)
            )

    orm(add)
    page.goto("/login/")
    log_in(page, user.username)
    groups = page.locator(".conversation-group")
    expect(groups).to_have_text(["Today", "Yesterday", "Previous 7 days", "Earlier"])
    page.screenshot(path=shots / "conversations.png")

    page.get_by_role("searchbox", name="Search conversations").fill("lisbon")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".search-hit")).to_have_count(2)
    expect(page.locator(".search-hit mark").first).to_be_visible()
    page.screenshot(path=shots / "search.png")

    provider = orm(lambda: make_provider(second))
    page.get_by_role("link", name="All conversations").click()
    page.get_by_role("button", name="New chat").click()
    # The draft's script has taken the composer: keys pressed before that reach a bare one.
    expect(page.locator("#chat")).to_have_attribute("data-connection", "draft")
    page.get_by_role("combobox", name="Model").select_option(label="Large")
    send(page, "Which model are you? sim:tokens=30 sim:rate=0")
    bubble = finished_answer(page, "complete")
    expect(bubble.locator(".message-source")).to_have_text(f"sim-large · {provider.name}")
    page.mouse.move(0, 0)
    page.locator("#chat").screenshot(path=shots / "model-picker.png")
    assert problems == []
