"""Answers rendered as Markdown in real Chromium: the same live and after a reload, safe.

The simulator's `sim:markdown=1` answer has one of each thing the renderer handles
(streaming/simulator/text.py MARKDOWN_SAMPLE); hostile answers are stored messages, rendered
by the same code when the page loads, and the simulator's echo of a hostile prompt, rendered
live.
"""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from streaming.models import Conversation, Message
from tests.support.browser import (
    CHAT_URL,
    finished_answer,
    log_in,
    open_new_chat,
    orm,
    script_problems,
    send,
    wait_until_connected,
    watch_dialogs,
)
from tests.support.markdown import HOSTILE, assert_no_live_dangerous_urls

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE_URL = "https://images.example.com/diagram.png"
PYTHON_CODE = """def greet(name: str) -> str:
    # Say hello.
    return f"Hello, {name}!"  # a <b>comment</b>"""


def stored_answer(user: User, content: str) -> Conversation:
    """A conversation whose stored assistant answer is `content`."""

    def create() -> Conversation:
        conversation = Conversation.objects.create(owner=user, title="hostile")
        asked = Message.objects.create(conversation=conversation, role="user", content="hi")
        Message.objects.create(
            conversation=conversation,
            parent=asked,
            role="assistant",
            content=content,
            status="complete",
        )
        return conversation

    return orm(create)


def test_markdown_answer_renders_the_same_live_and_after_reload(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_new_chat(page, user.username)

    send(page, "Show me everything sim:markdown=1 sim:rate=100")
    streaming = page.locator('.message--assistant[data-status="streaming"] .message-content')
    # Rendered while it streams, not only at the end.
    expect(streaming.locator("h2")).to_have_count(1)
    bubble = finished_answer(page, "complete")
    content = bubble.locator(".message-content")
    # Before anything below touches the page (Playwright's checks may leave attributes).
    live = content.inner_html()
    page.screenshot(path=tmp_path / "markdown.png", full_page=True)

    expect(content.locator("h2")).to_have_text("A rich answer")
    expect(content.locator("h3")).to_have_count(3)
    expect(content.locator("table th")).to_have_count(3)
    expect(content.locator("table td").first).to_have_text("Python")
    # The sample's "Since" column is |------:|: aligned by a class, as no inline style may.
    since = content.locator("table tr > :nth-child(3)")
    expect(since).to_have_count(3)
    for cell in since.all():
        expect(cell).to_have_class("align-right")
        expect(cell).to_have_css("text-align", "right")
    expect(content.locator("table td").first).to_have_css("text-align", "start")
    assert "style=" not in live
    expect(content.locator("li")).to_have_count(5)
    expect(content.locator("s")).to_have_text("struck")
    boxes = content.locator("li input[type=checkbox]")
    expect(boxes).to_have_count(2)
    for index in range(2):
        expect(boxes.nth(index)).to_be_disabled()
    expect(boxes.first).to_be_checked()
    expect(boxes.last).not_to_be_checked()
    expect(content.locator(":not(pre) > code")).to_have_text("inline_code()")
    code = content.locator("pre code.hljs")
    expect(code).to_have_count(2)
    expect(code.first).to_have_class(re.compile(r"\blanguage-python\b"))
    expect(code.last).to_have_class(re.compile(r"\blanguage-javascript\b"))
    assert code.first.locator("span.hljs-keyword").count() > 0
    assert code.last.locator("span.hljs-keyword").count() > 0
    expect(content.locator(".code-language")).to_have_text(["python", "javascript"])
    # Monospace, and long lines scroll instead of wrapping.
    style = code.first.evaluate(
        "el => { const s = getComputedStyle(el);"
        " return [s.fontFamily, s.whiteSpace, s.overflowX]; }"
    )
    assert "monospace" in style[0]
    assert style[1:] == ["pre", "auto"]
    expect(content.locator("math")).to_have_count(3)
    expect(content.locator('math[display="block"]')).to_have_count(1)
    expect(content.locator("annotation")).to_have_count(0)

    link = content.get_by_role("link", name="Python docs")
    expect(link).to_have_attribute("href", "https://docs.python.org/3/")
    for each in content.locator("a").all():
        expect(each).to_have_attribute("target", "_blank")
        expect(each).to_have_attribute("rel", "noopener noreferrer")
    # The image is a link to it, under its alt text: never an <img>, never fetched.
    expect(content.locator("img")).to_have_count(0)
    expect(content.get_by_role("link", name="A diagram that must not load")).to_have_attribute(
        "href", IMAGE_URL
    )
    assert IMAGE_URL not in requests

    # Copy takes the exact code, highlighting and all, and says so for a moment.
    copy = content.locator(".code-copy").first
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == PYTHON_CODE
    expect(copy).to_have_text("Copy")
    expect(content.locator(".code-copy")).to_have_count(2)

    page.reload()
    wait_until_connected(page)
    reloaded = page.locator(".message--assistant .message-content")
    expect(reloaded.locator("h2")).to_have_count(1)
    assert reloaded.inner_html() == live
    assert IMAGE_URL not in requests
    assert problems == []


def test_hostile_markdown_stored_executes_nothing_and_links_nothing(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    dialogs = watch_dialogs(page)
    problems = script_problems(page)
    conversation = stored_answer(user, HOSTILE)
    page.goto("/login/")
    log_in(page, user.username)
    page.goto(f"/c/{conversation.id}/")
    wait_until_connected(page)

    content = page.locator(".message--assistant .message-content")
    expect(content).to_contain_text("click me")
    page.screenshot(path=tmp_path / "hostile.png")
    # Raw HTML stays text, also inside code spans.
    expect(content).to_contain_text("<img src=x onerror=window.__pwned=5;alert(5)>")
    expect(content).to_contain_text("<script>window.__pwned=6; alert(6)</script>")
    expect(content.locator("code").first).to_have_text('<img src=x onerror="window.__pwned=7">')
    expect(content.locator("img, script, svg, iframe")).to_have_count(0)
    assert_no_live_dangerous_urls(page)
    expect(content).to_contain_text("[click me](javascript:window.__pwned=1)")
    # Still responsive: the page answers and renders a new answer.
    send(page, "still there? sim:tokens=5 sim:rate=100")
    expect(page.locator(".message--assistant")).to_have_count(2)
    finished_answer(page, "complete")
    assert page.evaluate("window.__pwned === undefined")
    assert dialogs == []
    assert problems == []


def test_hostile_prompt_echoed_live_executes_nothing(
    page: Page,
    user: User,
) -> None:
    dialogs = watch_dialogs(page)
    open_new_chat(page, user.username)
    # The simulator's answer opens by quoting the prompt: hostile Markdown, streamed.
    send(page, "<img src=x onerror=alert(1)> [x](javascript:alert(2)) sim:tokens=12 sim:rate=100")
    bubble = finished_answer(page, "complete")
    content = bubble.locator(".message-content")
    expect(content).to_contain_text("<img src=x onerror=alert(1)>")
    expect(content.locator("img")).to_have_count(0)
    expect(content.locator("a")).to_have_count(0)
    assert_no_live_dangerous_urls(page)
    assert page.evaluate("window.__pwned === undefined")
    assert dialogs == []
    expect(page).to_have_url(CHAT_URL)


def test_streaming_answer_keeps_its_finished_blocks_nodes(page: Page, user: User) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    # The Markdown sample three times over, slowly enough to look at it between frames.
    send(page, "Three samples sim:markdown=1 sim:tokens=372 sim:rate=60")
    content = page.locator('.message--assistant[data-status="streaming"] .message-content')
    expect(content.locator("h2")).to_have_count(1)
    # Past the first table (the heading after it is drawn), still in the first sample: the
    # frames of a loaded machine may bring several headings at once, so at least two.
    page.wait_for_function(
        """() => {
            const content = document.querySelector(
                '.message--assistant[data-status="streaming"] .message-content');
            return content !== null && content.querySelectorAll('h3').length >= 2;
        }"""
    )
    expect(content.locator("h2")).to_have_count(1)
    # The first heading and the first table are finished: mark their nodes.
    page.evaluate(
        """() => {
            const content = document.querySelector(
                '.message--assistant[data-status="streaming"] .message-content');
            content.querySelector('h2').finishedMark = 'heading';
            content.querySelector('table').finishedMark = 'table';
        }"""
    )
    expect(content.locator("h2")).to_have_count(2)  # many deltas later
    marks = """() => {
        const content = document.querySelector('.message--assistant .message-content');
        const heading = content.querySelector('h2');
        const table = content.querySelector('table');
        return [heading.finishedMark, table.finishedMark, heading.isConnected];
    }"""
    assert page.evaluate(marks) == ["heading", "table", True]
    bubble = finished_answer(page, "complete")
    # The bubble drawn again for its ending keeps them too, and draws what a reload draws.
    assert page.evaluate(marks) == ["heading", "table", True]
    expect(bubble.locator(".message-content h2")).to_have_count(3)
    live = bubble.locator(".message-content").inner_html()
    page.reload()
    wait_until_connected(page)
    reloaded = page.locator(".message--assistant .message-content")
    expect(reloaded.locator("h2")).to_have_count(3)
    assert reloaded.inner_html() == live
    assert page.evaluate(marks)[0] is None  # drawn afresh: the marks were on the old nodes
    assert problems == []
