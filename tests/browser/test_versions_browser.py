"""Message actions and versions in real Chromium: copy, edit, regenerate, the switcher.

What the model is sent is read from the simulator's own record of its requests, and what
is stored from the database, so each test checks the page, the wire and the rows.
"""

import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.browser import (
    composer,
    finished_answer,
    log_in,
    open_new_chat,
    orm,
    orm_until,
    script_problems,
    send,
    wait_until_connected,
    watch_dialogs,
)

pytestmark = pytest.mark.django_db(transaction=True)


def sent_for(simulator: SimulatorThread, marker: str) -> list[list[str]]:
    """The contents sent to the model, per request whose last message holds ``marker``."""
    return [
        [m["content"] for m in r["messages"]]
        for r in simulator.requests
        if marker in r["messages"][-1]["content"]
    ]


def bubble(chat: Page, text: str) -> Locator:
    """The one bubble on the page whose text contains ``text``."""
    return chat.locator(".message").filter(has_text=text)


def answer_to(question: Locator) -> Locator:
    """The answer right after ``question`` on the page (the branch shown)."""
    return question.locator("xpath=following-sibling::li[1]")


def ask(chat: Page, text: str) -> Locator:
    """Send ``text``; its finished answer."""
    finished = chat.locator('.message--assistant:not([data-status="streaming"])')
    count = finished.count()
    send(chat, text)
    expect(finished).to_have_count(count + 1)
    return answer_to(bubble(chat, text))


def test_copy_edit_switch_and_regenerate(
    page: Page,
    user: User,
    simulator: SimulatorThread,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_new_chat(page, user.username)
    m = uuid.uuid4().hex[:8]
    one, two = f"one {m} sim:markdown=1 sim:rate=200", f"two {m} sim:tokens=4"
    first = ask(page, one)
    second_id = str(ask(page, two).get_attribute("data-message-id"))

    # Copy gives the Markdown source, not the rendered text.
    first.hover()
    copy = first.get_by_role("button", name="Copy this answer")
    copy.click()
    expect(copy).to_have_text("Copied")
    first_id = str(first.get_attribute("data-message-id"))
    stored = orm(lambda: Message.objects.get(pk=first_id).content)
    assert "```python" in stored
    assert page.evaluate("navigator.clipboard.readText()") == stored

    # Edit the second message in place; the conversation continues from the edit.
    question = bubble(page, two)
    question.hover()
    question.get_by_role("button", name="Edit this message").click()
    editor = question.get_by_role("textbox", name="Edit your message")
    expect(editor).to_have_value(two)
    edited = f"two, edited {m} sim:tokens=5"
    editor.fill(edited)
    page.screenshot(path=tmp_path / "editing.png")
    editor.press("Enter")

    new_question = bubble(page, edited)
    expect(new_question.locator(".message-version")).to_have_text("2 / 2")
    expect(bubble(page, two)).to_have_count(0)  # the old version is not shown below it
    finished_answer(page, "complete")
    expect(page.locator(".message")).to_have_count(4)
    expect(composer(page)).to_be_focused()
    assert sent_for(simulator, edited) == [[one, stored, edited]]
    page.screenshot(path=tmp_path / "edited.png")

    # The switcher shows the old branch again, with its own answer; the next message
    # follows that branch, and the model is sent it.
    new_question.get_by_role("button", name="Previous version").click()
    old_question = bubble(page, two)
    expect(old_question.locator(".message-version")).to_have_text("1 / 2")
    expect(answer_to(old_question)).to_have_attribute("data-message-id", str(second_id))
    expect(bubble(page, edited)).to_have_count(0)
    orm_until(lambda: str(Conversation.objects.get(owner=user).leaf_id) == second_id)
    three = f"three {m} sim:tokens=3"
    third = ask(page, three)
    third_id = str(third.get_attribute("data-message-id"))
    old_answer = orm(lambda: Message.objects.get(pk=second_id))
    assert sent_for(simulator, three) == [[one, stored, two, old_answer.content, three]]

    # Regenerate a good answer: a second version beside it, and 2 / 2 on the new one.
    third.hover()
    third.get_by_role("button", name="Regenerate this answer").click()
    expect(
        page.locator('.message--assistant[data-status="complete"] .message-version')
    ).to_have_text("2 / 2")
    expect(answer_to(bubble(page, three))).not_to_have_attribute("data-message-id", third_id)
    assert len(sent_for(simulator, three)) == 2
    page.screenshot(path=tmp_path / "versions.png")

    # A reload shows the same branch; every version is still one click away.
    page.reload()
    wait_until_connected(page)
    expect(bubble(page, two).locator(".message-version")).to_have_text("1 / 2")
    expect(answer_to(bubble(page, three)).locator(".message-version")).to_have_text("2 / 2")
    expect(page.locator(".message")).to_have_count(6)
    assert problems == []


def test_a_switch_in_one_tab_shows_in_the_other(
    page: Page,
    user: User,
) -> None:
    open_new_chat(page, user.username)
    m = uuid.uuid4().hex[:8]
    answer = ask(page, f"hello {m} sim:tokens=4")
    first_id = answer.get_attribute("data-message-id")
    answer.hover()
    answer.get_by_role("button", name="Regenerate this answer").click()
    expect(page.locator(".message-version")).to_have_text("2 / 2")
    finished_answer(page, "complete")

    other = page.context.new_page()
    other.goto(page.url)
    wait_until_connected(other)
    expect(other.locator(".message-version")).to_have_text("2 / 2")

    page.get_by_role("button", name="Previous version").click()

    # The other tab follows, without a reload.
    expect(other.locator(".message-version")).to_have_text("1 / 2")
    expect(other.locator(".message--assistant")).to_have_attribute("data-message-id", str(first_id))
    other.close()


def test_actions_are_reachable_by_keyboard_and_shown_on_touch_screens(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    open_new_chat(page, user.username)
    m = uuid.uuid4().hex[:8]
    question_text = f"keys {m} sim:tokens=3"
    answer = ask(page, question_text)
    question = bubble(page, question_text)
    actions = question.locator(".message-actions")
    page.mouse.move(0, 0)  # away from every bubble
    expect(actions).to_have_css("opacity", "0")

    # From the composer, Shift+Tab walks back through the answer's actions to the question's.
    composer(page).focus()
    edit = question.get_by_role("button", name="Edit this message")
    for _ in range(10):
        page.keyboard.press("Shift+Tab")
        if edit.evaluate("button => button === document.activeElement"):
            break
    expect(edit).to_be_focused()
    expect(actions).to_have_css("opacity", "1")  # shown while the keyboard is in the bubble
    page.keyboard.press("Enter")
    editor = question.get_by_role("textbox", name="Edit your message")
    expect(editor).to_be_focused()
    editor.press("Escape")  # cancels the edit (and stops nothing)
    expect(editor).to_have_count(0)
    expect(edit).to_be_focused()
    expect(question.locator(".message-content")).to_have_text(question_text)

    # A touch screen has no hover: the actions are always shown, with finger-sized targets.
    touch = page.context.browser.new_context(  # type: ignore[union-attr]
        base_url=page.url.split("/c/")[0],
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
    )
    phone = touch.new_page()
    try:
        phone.goto(page.url)
        log_in(phone, user.username)
        wait_until_connected(phone)
        on_phone = bubble(phone, question_text)
        expect(on_phone.locator(".message-actions")).to_have_css("opacity", "1")
        box = on_phone.get_by_role("button", name="Edit this message").bounding_box()
        assert box is not None
        assert box["height"] >= 44
        assert box["width"] >= 44
        phone.screenshot(path=tmp_path / "phone.png")
        on_phone.get_by_role("button", name="Edit this message").tap()
        expect(on_phone.get_by_role("textbox", name="Edit your message")).to_be_visible()
    finally:
        touch.close()

    # The keyboard keeps its place while an answer starts and ends elsewhere on the page.
    send(page, f"more {m} sim:tokens=30 sim:rate=30")
    copy = answer.get_by_role("button", name="Copy this answer")
    copy.focus()
    finished = page.locator('.message--assistant[data-status="complete"]')
    expect(finished).to_have_count(2)
    expect(copy).to_be_focused()


def test_an_edit_stays_plain_text_whatever_it_holds(
    page: Page,
    user: User,
) -> None:
    open_new_chat(page, user.username)
    problems = script_problems(page)
    dialogs = watch_dialogs(page)
    m = uuid.uuid4().hex[:8]
    ask(page, f"start {m} sim:tokens=2")
    question = bubble(page, f"start {m}")
    question.hover()
    question.get_by_role("button", name="Edit this message").click()
    hostile = f'<img src=x onerror="window.__pwned=1"> **not bold** {m} sim:tokens=2'
    question.get_by_role("textbox").fill(hostile)
    question.get_by_role("textbox").press("Enter")

    shown = bubble(page, "not bold")
    expect(shown.locator(".message-version")).to_have_text("2 / 2")
    expect(shown.locator(".message-content")).to_have_text(hostile)
    expect(shown.locator(".message-content img, .message-content strong")).to_have_count(0)
    finished_answer(page, "complete")
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert problems == []
    saved = orm(lambda: Message.objects.get(content=hostile))
    assert saved.parent_id is None  # an edit of the first message: a first turn again


def test_a_draft_edit_is_kept_when_another_tab_changes_the_branch(
    page: Page,
    user: User,
) -> None:
    open_new_chat(page, user.username)
    m = uuid.uuid4().hex[:8]
    ask(page, f"first {m} sim:tokens=3")
    question = bubble(page, f"first {m}")
    question.hover()
    question.get_by_role("button", name="Edit this message").click()
    question.get_by_role("textbox").fill(f"second {m} sim:tokens=3")
    question.get_by_role("textbox").press("Enter")
    edited = bubble(page, f"second {m}")
    expect(edited.locator(".message-version")).to_have_text("2 / 2")
    finished_answer(page, "complete")
    other = page.context.new_page()
    other.goto(page.url)
    wait_until_connected(other)

    # A draft of a third version is being written here when the other tab goes back.
    edited.hover()
    edited.get_by_role("button", name="Edit this message").click()
    draft = f"a draft {m} that must not be lost"
    edited.get_by_role("textbox", name="Edit your message").fill(draft)
    other.locator(".message--user").get_by_role("button", name="Previous version").click()

    expect(bubble(page, f"first {m}").locator(".message-version")).to_have_text("1 / 2")
    expect(page.get_by_role("textbox", name="Edit your message")).to_have_count(0)
    expect(composer(page)).to_have_value(draft)
    expect(page.locator("#composer-alert")).to_contain_text("your edit is in the message box")
    assert orm(lambda: Message.objects.filter(content__contains="a draft").count()) == 0
    other.close()
