"""An answer cut off at the model's length limit, in Chromium: the page says so, offers
Continue, and the rest streams into the same bubble until the model ends it.

A daphne process as `make run` serves the site (tests/browser/conftest.py), with a small
OPENAI_MAX_TOKENS, answering with the simulator, which goes on from an answer sent back to
it.
"""

from itertools import islice
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Message
from streaming.simulator.text import answer_tokens
from tests.support.browser import (
    bubble_text,
    open_saved_chat,
    orm,
    plain,
    received_frames,
    script_problems,
    send,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)

#: The most tokens one reply may have on the test's server.
LIMIT = 20
NOTICE = f"The answer reached the length limit of one reply ({LIMIT} tokens) and stopped here."
CONTINUE = "Continue this answer where it stopped"


@pytest.fixture
def server_env() -> dict[str, str]:
    """The page's server cuts replies at ``LIMIT`` tokens."""
    return {"OPENAI_MAX_TOKENS": str(LIMIT)}


def test_a_cut_off_answer_says_so_and_continue_streams_the_rest_into_it(
    page: Page, user: User, tmp_path: Path
) -> None:
    problems = script_problems(page)
    frames = received_frames(page)
    open_saved_chat(page, user)
    # 50 tokens at 20 a second: each part of 20 streams for a second.
    send(page, "Write at length sim:tokens=50 sim:rate=20")

    answer = page.locator(".message--assistant")
    expect(answer).to_have_attribute("data-status", "complete")
    expect(answer.locator(".message-notice")).to_have_text(NOTICE)
    expect(answer.get_by_role("button", name=CONTINUE)).to_be_visible()
    first = bubble_text(answer)
    page.screenshot(path=tmp_path / "cut-off.png")

    # As the server draws it, after a reload: the notice and Continue are there too.
    page.reload()
    wait_until_connected(page)
    expect(answer.locator(".message-notice")).to_have_text(NOTICE)
    answer.get_by_role("button", name=CONTINUE).click()

    # The same bubble streams on: the notice gone while it does, then back with Continue.
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(answer.locator(".message-notice")).to_have_count(0)
    expect(answer).to_have_attribute("data-status", "complete")
    expect(answer.locator(".message-notice")).to_have_text(NOTICE)
    second = bubble_text(answer)
    assert second.startswith(first)
    assert len(second) > len(first)
    answer.get_by_role("button", name=CONTINUE).click()
    expect(answer).to_have_attribute("data-status", "streaming")
    # Stop (and Esc) stop it as any answer: the composer has the keyboard again.
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_be_focused()
    expect(answer).to_have_attribute("data-status", "complete")
    expect(answer.locator(".message-notice")).to_have_count(0)
    expect(answer.get_by_role("button", name=CONTINUE)).to_have_count(0)
    page.screenshot(path=tmp_path / "continued.png")

    # One answer, the whole of it: what the model writes to that message without a limit.
    shown = bubble_text(answer)
    whole = "".join(islice(answer_tokens("Write at length"), 50))
    assert shown == plain(whole)
    saved = orm(lambda: list(Message.objects.filter(conversation__owner=user, role="assistant")))
    assert [(m.content, m.status, m.finish_reason) for m in saved] == [(whole, "complete", "stop")]
    expect(page.locator(".message--assistant")).to_have_count(1)
    expect(answer.locator(".message-version")).to_have_count(0)
    # Its pieces came numbered on, part after part, each continuation from its stored seq.
    seqs = [f["seq"] for f in frames if f["type"] == "delta"]
    starts = [(f["seq"], len(f["text"])) for f in frames if f["type"] == "start"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [seq for seq, _ in starts[1:]] == sorted(seq for seq, _ in starts[1:])
    assert starts[-1][0] > starts[-2][0] > 0

    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message--assistant")).to_have_count(1)
    assert bubble_text(page.locator(".message--assistant")) == shown
    expect(page.get_by_role("button", name=CONTINUE)).to_have_count(0)
    assert problems == []
