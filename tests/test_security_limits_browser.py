"""What a person sees of a limit, in a real browser: the wait in words, their text kept."""

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Message
from streaming.simulator import SimulatorThread
from tests.servers import DaphneServer
from tests.test_browser import (  # noqa: F401 - `page` is a fixture, used by name
    composer,
    finished_answer,
    open_new_chat,
    orm,
    page,
    send,
)

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
    page: Page,  # noqa: F811 - the fixture imported above, asked for by name
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
