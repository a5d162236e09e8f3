"""Managing conversations in a real browser: a new chat saved only by its first message,
130 conversations scrolled to the oldest, search, and what a second tab sees live
(renames, deletes and their undo, answers streaming)."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from streaming.models import Conversation, Message
from tests.support.browser import (
    CHAT_URL,
    SLOW_ANSWER,
    chromium,
    composer,
    finished_answer,
    log_in,
    open_new_chat,
    orm,
    orm_until,
    script_problems,
    send,
    wait_until_connected,
)
from tests.support.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)


def conversations_of(user: User, count: int) -> list[Conversation]:
    """``count`` conversations, "Chat 0" the newest, each three hours before the one before
    it (130 span 16 days: every day group)."""

    def create() -> list[Conversation]:
        now = timezone.now()
        made = Conversation.objects.bulk_create(
            Conversation(owner=user, title=f"Chat {n}") for n in range(count)
        )
        for n, conversation in enumerate(made):
            conversation.updated_at = now - timedelta(hours=3 * n)
        Conversation.objects.bulk_update(made, ["updated_at"])
        return made

    return orm(create)


def item(scope: Page, title: str) -> Locator:
    return scope.locator(".conversation-item", has_text=title)


def logged_in_list(tab: Page, user: User) -> None:
    tab.goto("/login/")
    log_in(tab, user.username)
    expect(tab.get_by_role("heading", name="Conversations")).to_be_visible()


def test_new_chat_leaves_no_row_until_the_first_message(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    # The system prompt is set on the draft, before anything is saved.
    panel = page.locator("#system-prompt")
    panel.locator("summary").click()
    panel.get_by_role("button", name="Edit").click()
    panel.get_by_role("textbox", name="System prompt").fill("Answer like a pirate.")
    panel.get_by_role("button", name="Save").click()
    expect(panel.locator("#system-prompt-summary")).to_have_text("Answer like a pirate.")
    assert orm(lambda: Conversation.objects.count()) == 0

    send(page, f"Where is the treasure? {SLOW_ANSWER}")

    expect(page).to_have_url(CHAT_URL)
    wait_until_connected(page)
    expect(page.locator('.message--assistant[data-status="streaming"]')).to_have_count(1)
    conversation = orm(lambda: Conversation.objects.get(owner=user))
    assert conversation.system_prompt == "Answer like a pirate."
    assert page.url.endswith(f"/c/{conversation.id}/")
    # The sidebar lists it, as the open one.
    current = page.locator('.sidebar-list a[aria-current="page"]')
    expect(current).to_have_text(f"Where is the treasure? {SLOW_ANSWER}")
    page.get_by_role("button", name="Stop", exact=True).click()
    finished_answer(page, "cancelled")
    page.screenshot(path=tmp_path / "saved.png")
    assert problems == []


def test_a_refused_first_message_says_why_and_saves_nothing(
    page: Page,
    user: User,
) -> None:
    open_new_chat(page, user.username)
    page.context.clear_cookies(name="sessionid")  # signed out meanwhile

    send(page, "Hello there")

    expect(page.locator("#composer-alert")).to_contain_text("You are signed out")
    expect(page.locator(".connection-login")).to_be_visible()
    expect(composer(page)).to_have_value("Hello there")  # given back, not lost
    assert "/c/new/" in page.url
    assert orm(lambda: (Conversation.objects.count(), Message.objects.count())) == (0, 0)


def test_new_chat_from_the_list_opens_the_plain_draft_address(page: Page, user: User) -> None:
    logged_in_list(page, user)
    page.get_by_role("button", name="New chat").click()
    # The list's form sends its system prompt field, empty: no "?system_prompt=" stays.
    expect(page).to_have_url(re.compile(r"/c/new/$"))
    expect(page.locator("#composer-send")).to_be_disabled()  # the script took the form over


def test_a_first_message_is_sent_by_the_form_itself_without_javascript(
    server: DaphneServer,
    user: User,
) -> None:
    with chromium() as browser:
        context = browser.new_context(base_url=server.url, java_script_enabled=False)
        tab = context.new_page()
        logged_in_list(tab, user)
        tab.get_by_role("button", name="New chat").click()
        expect(tab).to_have_url(re.compile(r"/c/new/$"))

        # Refused (nothing written): the draft again, with why, and nothing saved.
        tab.get_by_role("button", name="Send").click()
        expect(tab.locator("#composer-alert")).to_have_text("Write a message before sending.")
        assert orm(lambda: Conversation.objects.count()) == 0

        tab.get_by_role("textbox", name="Message", exact=True).fill("Hello without scripts")
        tab.get_by_role("button", name="Send").click()

        expect(tab).to_have_url(CHAT_URL)
        expect(tab.locator(".message--user")).to_have_text(re.compile("Hello without scripts"))
        conversation = orm(lambda: Conversation.objects.get(owner=user))
        assert tab.url.endswith(f"/c/{conversation.id}/")
        # Its answer was started, as the script's send would: it streams and is saved.
        orm_until(
            lambda: Message.objects.filter(
                conversation=conversation, role="assistant", status="complete"
            ).exists()
        )
        context.close()
    assert orm(lambda: Message.objects.filter(role="user").count()) == 1


def test_130_conversations_scroll_to_the_oldest_in_the_list_and_the_sidebar(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    conversations_of(user, 130)
    logged_in_list(page, user)
    listed = page.locator("#conversation-list .conversation-item")
    expect(listed).to_have_count(50)
    for heading in ("Today", "Yesterday", "Previous 7 days"):  # 150 hours, newest first
        expect(page.locator(".conversation-group", has_text=heading)).to_have_count(1)

    while listed.count() < 130:
        page.locator(".conversation-more").scroll_into_view_if_needed()
        expect(listed).not_to_have_count(listed.count())
    expect(item(page, "Chat 129")).to_be_visible()
    titles = page.locator("#conversation-list .conversation-title").all_text_contents()
    assert titles == [f"Chat {n}" for n in range(130)]
    expect(page.locator(".conversation-more")).to_have_count(0)
    # Each heading once, though its items came in several pages.
    for heading in ("Today", "Yesterday", "Previous 7 days", "Earlier"):
        expect(page.locator(".conversation-group", has_text=heading)).to_have_count(1)
    page.screenshot(path=tmp_path / "list.png")

    item(page, "Chat 0").locator("a").click()
    wait_until_connected(page)
    sidebar = page.locator(".sidebar-list .conversation-item")
    expect(sidebar).to_have_count(50)
    while sidebar.count() < 130:
        page.locator(".sidebar-list .conversation-more").scroll_into_view_if_needed()
        expect(sidebar).not_to_have_count(sidebar.count())
    expect(page.locator(".sidebar-list .conversation-item", has_text="Chat 129")).to_be_visible()
    expect(page.locator('.sidebar-list a[aria-current="page"]')).to_have_text("Chat 0")
    page.screenshot(path=tmp_path / "sidebar.png")


def test_search_finds_a_word_only_in_an_old_answer_highlighted(
    page: Page,
    user: User,
) -> None:
    made = conversations_of(user, 130)

    def old_answer() -> Message:
        question = Message.objects.create(conversation=made[120], role="user", content="Pets?")
        return Message.objects.create(
            conversation=made[120],
            parent=question,
            role="assistant",
            content="A <b>quokka</b> is friendly.",
        )

    answer = orm(old_answer)
    logged_in_list(page, user)
    item(page, "Chat 0").locator("a").click()
    wait_until_connected(page)

    page.get_by_role("searchbox", name="Search conversations").fill("quokka")
    page.get_by_role("searchbox", name="Search conversations").press("Enter")

    hits = page.locator(".search-hit")
    expect(hits).to_have_count(1)
    expect(hits.locator(".conversation-title")).to_have_text("Chat 120")
    expect(hits.locator("mark")).to_have_text("quokka")
    # The answer's markup is never markup here (PostgreSQL's headline drops the tags,
    # SQLite's shows them as text).
    expect(hits.locator(".search-snippet")).to_contain_text("is friendly")
    expect(hits.locator(".search-snippet b")).to_have_count(0)
    hits.locator("a").click()
    # Opened at the answer that matched, marked.
    expect(page).to_have_url(f"/c/{made[120].id}/?message={answer.id}")
    expect(page.locator(f'[data-message-id="{answer.id}"]')).to_have_class(re.compile("is-found"))


def test_rename_delete_and_undo_are_seen_live_in_a_tab_on_another_conversation(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    here, there = orm(
        lambda: [
            Conversation.objects.create(owner=user, title="Packing list"),
            Conversation.objects.create(owner=user, title="Trip to Rome"),
        ]
    )
    logged_in_list(page, user)
    page.goto(f"/c/{there.id}/")
    wait_until_connected(page)
    other = page.context.new_page()
    other.goto(f"/c/{here.id}/")
    wait_until_connected(other)
    expect(item(other, "Trip to Rome")).to_have_count(1)

    page.get_by_role("button", name="Rename this conversation").click()
    page.locator("#chat-rename-input").fill("Rome in <i>May</i>")
    page.locator("#chat-rename-input").press("Enter")
    expect(item(other, "Rome in <i>May</i>")).to_have_count(1)
    expect(item(other, "Trip to Rome")).to_have_count(0)

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Conversation deleted.")).to_be_visible()
    expect(item(other, "Rome in <i>May</i>")).to_have_count(0)
    expect(item(other, "Packing list")).to_have_count(1)
    other.screenshot(path=tmp_path / "deleted.png")

    page.get_by_role("button", name="Undo").click()
    expect(page).to_have_url(f"/c/{there.id}/")
    wait_until_connected(page)
    expect(page.locator("#chat-title")).to_have_text("Rome in <i>May</i>")
    expect(item(other, "Rome in <i>May</i>")).to_have_count(1)
    # In its place again: the newest activity first.
    titles = other.locator(".sidebar-list .conversation-title").all_text_contents()
    assert titles == ["Rome in <i>May</i>", "Packing list"]
    other.close()


def test_a_deleted_conversations_own_tab_says_so(
    page: Page,
    user: User,
) -> None:
    conversation = orm(lambda: Conversation.objects.create(owner=user, title="Doomed"))
    logged_in_list(page, user)
    page.goto(f"/c/{conversation.id}/")
    wait_until_connected(page)
    other = page.context.new_page()
    other.goto(f"/c/{conversation.id}/")
    wait_until_connected(other)

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()

    expect(other.locator("#connection-status")).to_have_text("This conversation was deleted.")
    expect(other.locator("#chat")).to_have_attribute("data-connection", "closed")
    other.reload()
    expect(other.get_by_text("This conversation does not exist")).to_be_visible()
    other.close()


def test_the_streaming_indicator_appears_and_goes(
    page: Page,
    user: User,
) -> None:
    here, there = orm(
        lambda: [
            Conversation.objects.create(owner=user, title="Watching"),
            Conversation.objects.create(owner=user, title="Answering"),
        ]
    )
    logged_in_list(page, user)
    page.goto(f"/c/{here.id}/")
    wait_until_connected(page)
    dot = item(page, "Answering").locator(".answering-dot")
    expect(dot).to_be_hidden()
    other = page.context.new_page()
    other.goto(f"/c/{there.id}/")
    wait_until_connected(other)

    send(other, "Tell me a long story sim:tokens=120 sim:rate=40")

    expect(dot).to_be_visible()
    # Rendered from the database too: the list page, loaded while it answers.
    listing = page.context.new_page()
    listing.goto("/")
    expect(item(listing, "Answering").locator(".answering-dot")).to_be_visible()
    expect(item(listing, "Watching").locator(".answering-dot")).to_be_hidden()
    listing.close()
    # Its activity moved it to the top of the other tab's list.
    expect(page.locator(".sidebar-list .conversation-title").first).to_have_text("Answering")
    finished_answer(other, "complete")
    expect(dot).to_be_hidden()
    other.close()
