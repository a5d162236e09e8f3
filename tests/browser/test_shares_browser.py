"""Share links in real Chromium: the owner shares from the chat page, a stranger's browser
(no account, another daphne process) reads the copy rendered as the chat renders it and
cannot write; a revoke holds at once on the other process; hostile Markdown does nothing
on the shared page; a signed-in reader continues in a chat of their own."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from playwright.sync_api import Browser, Page, WebSocket, expect

from streaming.models import Conversation, Message, SharedLink
from streaming.services import shares
from streaming.simulator import SimulatorThread
from streaming.simulator.text import MARKDOWN_SAMPLE
from tests.support.browser import (
    chromium,
    desktop_context,
    finished_answer,
    log_in,
    orm,
    script_problems,
    send,
    wait_until_connected,
    watch_dialogs,
)
from tests.support.markdown import HOSTILE, assert_no_live_dangerous_urls
from tests.support.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

LINK_NOT_FOUND = "This link does not open"


def stored_chat(owner: User, answer: str, title: str = "Shared plans") -> Conversation:
    def create() -> Conversation:
        conversation = Conversation.objects.create(owner=owner, title=title)
        asked = Message.objects.create(
            conversation=conversation, role="user", content="Show me **everything**"
        )
        Message.objects.create(
            conversation=conversation, parent=asked, role="assistant", content=answer
        )
        return conversation

    return orm(create)


@contextmanager
def page_on(browser: Browser, server: DaphneServer) -> Iterator[Page]:
    """A page in a context of its own: its own cookies, as another person's browser."""
    context = desktop_context(browser, server)
    try:
        yield context.new_page()
    finally:
        context.close()


def sockets_of(page: Page) -> list[WebSocket]:
    opened: list[WebSocket] = []
    page.on("websocket", lambda ws: opened.append(ws))
    return opened


def test_a_stranger_reads_the_shared_copy_cannot_write_and_loses_it_on_revoke(
    live_servers: Callable[..., list[DaphneServer]], simulator: SimulatorThread, user: User
) -> None:
    owners, strangers = live_servers(2, SHARE_LINKS="public")
    conversation = stored_chat(user, MARKDOWN_SAMPLE)
    with (
        chromium() as browser,
        page_on(browser, owners) as owner,
        page_on(browser, strangers) as stranger,
    ):
        owner.goto("/login/")
        log_in(owner, user.username)
        owner.goto(f"/c/{conversation.id}/")
        wait_until_connected(owner)
        owner.get_by_text("Export").click()
        owner.get_by_role("link", name="Share link…").click()
        owner.get_by_label("Who can open it").select_option("anyone")
        owner.get_by_role("button", name="Create link").click()
        url = owner.get_by_label("Your link").input_value()
        assert url.startswith(owners.url + "/s/")
        path = url.removeprefix(owners.url)

        problems, sockets, dialogs = (
            script_problems(stranger),
            sockets_of(stranger),
            watch_dialogs(stranger),
        )
        stranger.goto(path)
        expect(stranger.get_by_role("heading", name="Shared plans")).to_be_visible()
        answer = stranger.locator(".message--assistant .message-content")
        # Drawn by the chat's renderer: a table, highlighted code with its Copy button.
        expect(answer.locator("table")).to_have_count(1)
        expect(answer.locator(".code-block .code-copy").first).to_be_visible()
        expect(answer.locator("h2")).to_have_text("A rich answer")
        # The user's message stays the text it was.
        expect(stranger.locator(".message--user .message-content")).to_have_text(
            "Show me **everything**"
        )
        # Nothing to write with, nothing to connect to.
        expect(stranger.locator("textarea, #composer")).to_have_count(0)
        expect(stranger.get_by_role("button", name="Continue in a new chat")).to_have_count(0)
        assert sockets == []
        assert problems == []
        assert dialogs == []

        # Revoked on the owner's process: the stranger's, another process, says so at once.
        owner.get_by_role("button", name="Revoke the link to Shared plans").click()
        expect(owner.get_by_text("Link revoked")).to_be_visible()
        response = stranger.goto(path)
        assert response is not None
        assert response.status == 404
        expect(stranger.get_by_text(LINK_NOT_FOUND)).to_be_visible()


@override_settings(SHARE_LINKS="public")  # this process's, which makes the links
def test_expired_and_deleted_links_are_not_found_in_the_browser(
    live_servers: Callable[..., list[DaphneServer]], simulator: SimulatorThread, user: User
) -> None:
    (server,) = live_servers(1, SHARE_LINKS="public")
    expired = orm(lambda: shares.do_share(stored_chat(user, "old"), "anyone", "1d"))
    deleted = orm(lambda: shares.do_share(stored_chat(user, "gone"), "anyone", "never"))
    orm(lambda: SharedLink.objects.filter(pk=expired.pk).update(expires_at="2000-01-01T00:00Z"))
    orm(lambda: Conversation.objects.filter(pk=deleted.conversation_id).delete())
    with chromium() as browser, page_on(browser, server) as stranger:
        for link in (expired, deleted):
            response = stranger.goto(f"/s/{link.token}/")
            assert response is not None
            assert response.status == 404
            expect(stranger.get_by_text(LINK_NOT_FOUND)).to_be_visible()


@override_settings(SHARE_LINKS="public")
def test_hostile_markdown_on_a_shared_page_executes_nothing_and_links_nothing(
    live_servers: Callable[..., list[DaphneServer]], simulator: SimulatorThread, user: User
) -> None:
    (server,) = live_servers(1, SHARE_LINKS="public")
    link = orm(lambda: shares.do_share(stored_chat(user, HOSTILE), "anyone", "never"))
    with chromium() as browser, page_on(browser, server) as stranger:
        dialogs, problems = watch_dialogs(stranger), script_problems(stranger)
        stranger.goto(f"/s/{link.token}/")
        content = stranger.locator(".message--assistant .message-content")
        expect(content).to_contain_text("click me")
        # Raw HTML stays text, in code spans too; nothing runs, loads or links to script.
        expect(content).to_contain_text("<img src=x onerror=window.__pwned=5;alert(5)>")
        expect(content).to_contain_text("<script>window.__pwned=6; alert(6)</script>")
        expect(content.locator("code").first).to_have_text('<img src=x onerror="window.__pwned=7">')
        expect(content.locator("img, script, svg, iframe")).to_have_count(0)
        assert_no_live_dangerous_urls(stranger)
        assert stranger.evaluate("window.__pwned === undefined")
        assert dialogs == []
        assert problems == []


def test_a_signed_in_reader_continues_in_a_new_chat_of_their_own(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    user: User,
    other_user: User,
) -> None:
    (server,) = live_servers(1, OPENAI_BASE_URL=simulator.base_url)
    link = orm(
        lambda: shares.do_share(stored_chat(user, "The plan is *simple*."), "signed_in", "never")
    )
    with chromium() as browser, page_on(browser, server) as reader:
        reader.goto(f"/s/{link.token}/")
        # Signed-in readers only: the login page first, then back to the link.
        log_in(reader, other_user.username)
        expect(reader.get_by_role("heading", name="Shared plans")).to_be_visible()
        reader.get_by_role("button", name="Continue in a new chat").click()
        wait_until_connected(reader)
        expect(reader.locator(".message--assistant em")).to_have_text("simple")
        send(reader, "And then? sim:tokens=5 sim:rate=100")
        finished_answer(reader, "complete")
    copy: Any = orm(lambda: Conversation.objects.get(owner=other_user))
    assert orm(lambda: copy.messages.count()) == 4
    assert orm(lambda: Conversation.objects.get(owner=user).messages.count()) == 2
