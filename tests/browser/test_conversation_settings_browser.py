"""A conversation's settings in real Chromium: the system prompt panel and renaming in
place, each read, changed, seen in another tab; the prompt is sent from then on."""

import uuid

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Conversation
from streaming.simulator import SimulatorThread
from tests.support.browser import (
    finished_answer,
    open_new_chat,
    open_saved_chat,
    orm,
    script_problems,
    send,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_system_prompt_is_shown_and_edited_at_any_time(
    page: Page,
    user: User,
    simulator: SimulatorThread,
) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    panel = page.locator("#system-prompt")
    expect(panel.locator("#system-prompt-summary")).to_have_text("None")
    m = uuid.uuid4().hex[:8]
    send(page, f"first {m} sim:tokens=2")
    finished_answer(page, "complete")
    other = page.context.new_page()
    other.goto(page.url)
    wait_until_connected(other)

    panel.locator("summary").click()
    panel.get_by_role("button", name="Edit").click()
    prompt = "You are terse.\n<b>Never</b> use more than ten words."
    panel.get_by_role("textbox", name="System prompt").fill(prompt)
    panel.get_by_role("button", name="Save").click()

    expect(panel.locator("#system-prompt-status")).to_contain_text("Saved")
    expect(panel.get_by_role("textbox", name="System prompt")).to_be_hidden()
    expect(panel.locator("#system-prompt-text")).to_have_text(prompt)  # as text, not HTML
    expect(panel.locator("#system-prompt-text b")).to_have_count(0)
    # The other tab shows it without a reload.
    expect(other.locator("#system-prompt-summary")).to_have_text("You are terse.")
    assert orm(lambda: Conversation.objects.get(owner=user).system_prompt) == prompt

    # It applies from the next message on.
    send(page, f"second {m} sim:tokens=2")
    expect(page.locator('.message--assistant[data-status="complete"]')).to_have_count(2)
    requests = [r["messages"] for r in simulator.requests if m in str(r["messages"])]
    first, second = requests
    assert first[0]["role"] == "user"  # before the change: no system prompt
    assert second[0] == {"role": "system", "content": prompt}

    page.reload()
    wait_until_connected(page)
    expect(page.locator("#system-prompt-summary")).to_have_text("You are terse.")
    other.close()
    assert problems == []


def test_a_system_prompt_too_long_is_refused_and_kept_in_the_editor(
    page: Page,
    user: User,
) -> None:
    open_saved_chat(page, user)
    panel = page.locator("#system-prompt")
    panel.locator("summary").click()
    panel.get_by_role("button", name="Edit").click()
    editor = panel.get_by_role("textbox", name="System prompt")
    # The text area stops at the limit; a page without that (or a script) gets the server's no.
    editor.evaluate("area => area.removeAttribute('maxlength')")
    too_long = "x" * 8001
    editor.fill(too_long)
    panel.get_by_role("button", name="Save").click()

    expect(panel.locator("#system-prompt-status")).to_contain_text("limit is 8000")
    expect(editor).to_have_value(too_long)
    assert orm(lambda: Conversation.objects.get(owner=user).system_prompt) == ""


def test_a_conversation_is_renamed_in_place_and_every_tab_shows_it(
    page: Page,
    user: User,
) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    send(page, "Where to go in spring? sim:tokens=2")
    finished_answer(page, "complete")
    title = page.locator("#chat-title")
    expect(title).to_have_text("Where to go in spring? sim:tokens=2")
    other = page.context.new_page()
    other.goto(page.url)
    wait_until_connected(other)

    # Esc leaves it as it was.
    page.get_by_role("button", name="Rename this conversation").click()
    page.get_by_role("textbox", name="Title").fill("Not this")
    page.get_by_role("textbox", name="Title").press("Escape")
    expect(page.get_by_role("textbox", name="Title")).to_be_hidden()
    expect(title).to_have_text("Where to go in spring? sim:tokens=2")
    expect(page.get_by_role("button", name="Rename this conversation")).to_be_focused()

    page.get_by_role("button", name="Rename this conversation").click()
    page.get_by_role("textbox", name="Title").fill("<i>Spring</i> trip")
    page.get_by_role("textbox", name="Title").press("Enter")

    expect(title).to_have_text("<i>Spring</i> trip")  # text, not HTML
    expect(page.get_by_role("textbox", name="Title")).to_be_hidden()
    expect(page).to_have_title("<i>Spring</i> trip · chatsite")
    # The other tab's header and sidebar follow without a reload.
    expect(other.locator("#chat-title")).to_have_text("<i>Spring</i> trip")
    expect(other.locator('.sidebar-list a[aria-current="page"]')).to_have_text("<i>Spring</i> trip")
    assert orm(lambda: Conversation.objects.get(owner=user).title) == "<i>Spring</i> trip"

    page.reload()
    wait_until_connected(page)
    expect(title).to_have_text("<i>Spring</i> trip")
    other.close()
    assert problems == []
