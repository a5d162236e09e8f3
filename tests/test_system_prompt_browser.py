"""The system prompt panel in real Chromium: read, edited, seen in another tab, sent."""

import uuid

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Conversation
from streaming.simulator import SimulatorThread
from tests.test_browser import (  # noqa: F401 - `page` and `server` are fixtures, used by name
    finished_answer,
    open_new_chat,
    orm,
    page,
    script_problems,
    send,
    server,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_system_prompt_is_shown_and_edited_at_any_time(
    page: Page,  # noqa: F811 - the fixture imported above
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
    page: Page,  # noqa: F811 - the fixture imported above
    user: User,
) -> None:
    open_new_chat(page, user.username)
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
