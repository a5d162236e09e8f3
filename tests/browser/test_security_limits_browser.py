"""What a person sees of a limit, in a real browser: the wait in words, their text kept."""

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Message
from streaming.simulator import SimulatorThread
from tests.support.browser import composer, finished_answer, open_new_chat, orm, send
from tests.support.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(
    live_servers: Callable[..., list[DaphneServer]], simulator: SimulatorThread
) -> Iterator[DaphneServer]:
    """The embedded default, allowing one message a minute."""
    port = urlsplit(simulator.base_url).port
    (daphne,) = live_servers(
        1, OPENAI_BASE_URL="", SIMULATOR_PORT=str(port), LIMIT_MESSAGES_PER_MINUTE="1"
    )
    yield daphne
    print(f"--- daphne log ---\n{daphne.log()}")


def test_a_message_over_the_limit_shows_the_wait_and_keeps_the_text(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    open_new_chat(page, user.username)
    send(page, "first sim:tokens=3 sim:rate=100")
    finished_answer(page, "complete")

    send(page, "second, too soon")

    alert = page.locator("#composer-alert")
    expect(alert).to_contain_text("Messages are limited to 1 a minute. Try again in")
    page.screenshot(path=tmp_path / "limited.png")
    expect(composer(page)).to_have_value("second, too soon")
    expect(page.locator(".message--user")).to_have_count(1)
    assert orm(lambda: Message.objects.filter(content__startswith="second").count()) == 0
    # The text given back can be sent again by a click or a tap, not only by Enter.
    expect(page.locator("#composer-send")).to_be_enabled()


def test_an_edit_over_the_limit_gives_the_text_back_in_the_editor(
    page: Page,
    user: User,
) -> None:
    open_new_chat(page, user.username)
    send(page, "first sim:tokens=3 sim:rate=100")
    finished_answer(page, "complete")
    question = page.locator(".message--user")
    question.hover()
    question.get_by_role("button", name="Edit this message").click()
    question.get_by_role("textbox", name="Edit your message").fill("first, edited too soon")
    question.get_by_role("textbox", name="Edit your message").press("Enter")

    expect(page.locator("#composer-alert")).to_contain_text("Messages are limited to 1 a minute.")
    # The message it was to replace is shown again, in its editor, with the edit as typed.
    editor = question.get_by_role("textbox", name="Edit your message")
    expect(editor).to_have_value("first, edited too soon")
    expect(question.locator(".message-content")).to_have_text("first sim:tokens=3 sim:rate=100")
    expect(page.locator(".message")).to_have_count(2)
    expect(page.locator(".message-version")).to_have_count(0)
    expect(composer(page)).to_have_value("")
    assert orm(lambda: Message.objects.filter(content__contains="edited").count()) == 0


def test_a_first_message_over_the_limit_keeps_its_text_and_send(
    page: Page,
    user: User,
) -> None:
    open_new_chat(page, user.username)
    send(page, "first sim:tokens=3 sim:rate=100")
    finished_answer(page, "complete")
    page.goto("/c/new/")
    expect(page.locator("#composer-send")).to_be_disabled()  # nothing written yet

    # A new chat's first message is posted over HTTP, and refused there.
    send(page, "a new chat, too soon")

    expect(page.locator("#composer-alert")).to_contain_text("Messages are limited to 1 a minute.")
    expect(composer(page)).to_have_value("a new chat, too soon")
    # Clickable again, without the text being edited first.
    expect(page.locator("#composer-send")).to_be_enabled()
    assert orm(lambda: Message.objects.filter(content__contains="too soon").count()) == 0
