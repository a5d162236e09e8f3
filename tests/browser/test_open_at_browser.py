"""A search hit opens a long conversation at the matching message, in Chromium
(docs/protocol.md, "Opening at a message"): the message drawn, in view and marked, in a page
as small as the one at the end; newer messages as the reader scrolls down; Jump to latest;
what another tab adds meanwhile; and a message sent from there."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Conversation, Message
from tests.support.browser import (
    composer,
    finished_answer,
    log_in,
    orm,
    orm_until,
    script_problems,
    wait_until_connected,
)
from tests.support.long import write_chain

pytestmark = pytest.mark.django_db(transaction=True)

WORD = "quokkaberry"
SCROLLER = "document.getElementById('messages-scroller')"


def long_conversation(
    page: Page, user: User, count: int, found: int
) -> tuple[list[str], Conversation, list[Message]]:
    """``count`` messages of 500 characters, of which only message ``found`` says WORD, and
    ``page`` logged in as their owner, watched for script problems."""

    def write() -> tuple[Conversation, list[Message]]:
        conversation = Conversation.objects.create(owner=user, title="Years of questions")
        messages = write_chain(conversation, count, 500)
        Message.objects.filter(pk=messages[found].pk).update(
            content=f"Where can I buy {WORD} jam? " + "lorem ipsum " * 30
        )
        return conversation, messages

    problems = script_problems(page)
    conversation, messages = orm(write)
    page.goto("/login/")
    log_in(page, user.username)
    return problems, conversation, messages


def bubble(page: Page, message: Message) -> Any:
    return page.locator(f'.message[data-message-id="{message.id}"]')


def load_newer(page: Page) -> None:
    """Scroll to the bottom of what the page holds; the button there asks for what is below,
    and the message the reader saw last stays where it was on the screen."""
    held = page.locator(".message").count()
    last_id, y_before = page.evaluate(
        f"""() => {{
            {SCROLLER}.scrollTop = {SCROLLER}.scrollHeight;
            const bubbles = document.querySelectorAll('.message');
            const last = bubbles[bubbles.length - 1];
            return [last.dataset.messageId, last.getBoundingClientRect().top];
        }}"""
    )
    page.wait_for_function("n => document.querySelectorAll('.message').length > n", arg=held)
    box = page.locator(f'.message[data-message-id="{last_id}"]').bounding_box()
    assert box is not None
    assert abs(box["y"] - y_before) < 3


def answered(page: Page, conversation: Conversation, question_start: str) -> Message:
    """The question sent that starts with ``question_start``, once its answer is complete in
    the database and on the page, the last two bubbles, in view."""
    orm_until(
        lambda: Message.objects.filter(
            conversation=conversation,
            parent__content__startswith=question_start,
            status=Message.Status.COMPLETE,
        ).exists()
    )
    question = orm(
        lambda: Message.objects.get(conversation=conversation, content__startswith=question_start)
    )
    answer = orm(lambda: Message.objects.get(parent=question))
    expect(page.locator(".message").last).to_have_attribute("data-message-id", str(answer.id))
    expect(finished_answer(page, "complete")).to_be_in_viewport()
    expect(page.locator(".message").nth(-2)).to_have_attribute("data-message-id", str(question.id))
    return question


def test_a_search_hit_opens_a_ten_thousand_message_conversation_at_the_message(
    page: Page, user: User
) -> None:
    problems, conversation, messages = long_conversation(page, user, 10_000, 50)
    page.get_by_role("searchbox", name="Search conversations").fill(WORD)
    page.get_by_role("searchbox", name="Search conversations").press("Enter")
    hit = page.locator(".search-hit a")
    expect(hit).to_have_count(1)
    expect(hit).to_have_attribute("href", f"/c/{conversation.id}/?message={messages[50].id}")

    with page.expect_navigation() as opened:
        hit.click()
    response = opened.value
    assert response is not None
    assert len(response.body()) < 300_000  # a window, not 5 MB of messages
    wait_until_connected(page)

    found = bubble(page, messages[50])
    expect(found).to_be_in_viewport()
    expect(found).to_have_class("message message--user message--complete is-found")
    expect(found).to_be_focused()
    expect(found.locator(".message-content")).to_contain_text(WORD)
    expect(page.locator("#chat-announcer")).to_have_text("Showing the message you searched for.")
    held = page.locator(".message").count()
    assert held <= 100
    expect(bubble(page, messages[-1])).to_have_count(0)
    expect(page.locator("#jump-latest")).to_be_visible()  # the end is not on the page

    for _ in range(2):  # reading down: newer messages come in below, the place kept
        load_newer(page)
    assert page.locator(".message").count() > held
    expect(page.locator("#messages-newer")).to_be_attached()

    page.locator("#jump-latest").click()
    expect(bubble(page, messages[-1])).to_be_in_viewport()
    expect(page.locator("#messages-newer")).to_be_hidden()
    expect(bubble(page, messages[50])).to_have_count(0)  # the window went to the end
    assert "message=" not in page.url

    composer(page).fill("And now? sim:tokens=20")
    composer(page).press("Enter")
    question = answered(page, conversation, "And now?")
    assert question.parent_id == messages[-1].id  # it follows the end, not message 50
    assert orm(lambda: Message.objects.filter(conversation=conversation).count()) == 10_002
    assert problems == []


def test_what_another_tab_adds_past_the_window_is_told_and_then_shown_whole(
    page: Page, user: User
) -> None:
    problems, conversation, messages = long_conversation(page, user, 400, 60)
    page.goto(f"/c/{conversation.id}/?message={messages[60].id}")
    wait_until_connected(page)
    expect(bubble(page, messages[60])).to_be_in_viewport()
    jump = page.get_by_role("button", name="Jump to latest")
    expect(jump).to_have_text("Jump to latest ↓")  # nothing new yet

    other = page.context.new_page()
    other.goto(f"/c/{conversation.id}/")
    wait_until_connected(other)
    composer(other).fill("Another tab asks sim:tokens=120 sim:rate=60")
    composer(other).press("Enter")

    # Told, not drawn in the gap below what the page holds.
    expect(jump).to_have_text("Jump to latest · new messages ↓")
    expect(page.locator(".message", has_text="Another tab asks")).to_have_count(0)
    while page.locator("#messages-newer").is_visible():
        load_newer(page)
    expect(page.locator("#jump-latest-news")).to_have_text("")  # all of it held now
    page.evaluate(f"{SCROLLER}.scrollTop = {SCROLLER}.scrollHeight")
    question = answered(page, conversation, "Another tab asks")
    answered(other, conversation, "Another tab asks")
    page_text = page.locator(".message-content").last.text_content()
    other_text = other.locator(".message-content").last.text_content()
    assert page_text
    assert page_text == other_text
    shown = page.eval_on_selector_all(".message", "els => els.map(el => el.dataset.messageId)")
    assert shown[-3] == str(messages[-1].id)
    assert shown.count(str(question.id)) == 1
    assert problems == []


def test_a_message_sent_away_from_the_end_goes_to_the_end(page: Page, user: User) -> None:
    problems, conversation, messages = long_conversation(page, user, 400, 60)

    # No such message here: the page opens at the end, as if none were asked for.
    page.goto(f"/c/{conversation.id}/?message=not-a-message")
    wait_until_connected(page)
    expect(bubble(page, messages[-1])).to_be_in_viewport()
    expect(page.locator("#jump-latest")).to_be_hidden()
    assert "message=" not in page.url

    page.goto(f"/c/{conversation.id}/?message={messages[60].id}")
    wait_until_connected(page)
    expect(bubble(page, messages[60])).to_be_in_viewport()
    composer(page).fill("Sent from the middle sim:tokens=15")
    composer(page).press("Enter")

    question = answered(page, conversation, "Sent from the middle")
    assert question.parent_id == messages[-1].id  # it follows the end, not message 60
    expect(bubble(page, messages[-1])).to_be_attached()
    expect(bubble(page, messages[60])).to_have_count(0)
    expect(page.locator(".message--user", has_text="Sent from the middle")).to_have_count(1)
    assert composer(page).input_value() == ""
    assert problems == []
