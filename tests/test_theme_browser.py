"""Looks right everywhere, in real Chromium: light and dark themes.

The dark theme is tested under the system setting (`color_scheme="dark"`) and by the
header's picker.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.servers import DaphneServer
from tests.test_browser import (  # noqa: F401 - `page` and `server` are fixtures, used by name
    CHAT_URL,
    finished_answer,
    log_in,
    page,
    script_problems,
    send,
    server,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)

THEME_KEY = "chatsite-theme"


@pytest.fixture
def new_context(
    page: Page,  # noqa: F811 - the fixture imported above: its browser is reused
    server: DaphneServer,  # noqa: F811
) -> Iterator[Callable[..., BrowserContext]]:
    """Make browser contexts (a colour scheme, a phone's screen) in the fixture's Chromium."""
    made: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", {"width": 1100, "height": 760})
        context = page.context.browser.new_context(  # type: ignore[union-attr]
            base_url=server.url, **options
        )
        context.set_default_timeout(15_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def logged_in(context: BrowserContext, username: str, path: str = "/") -> Page:
    """A new page of ``context``, logged in, on ``path``."""
    tab = context.new_page()
    tab.goto(f"/login/?next={path}")
    log_in(tab, username)
    expect(tab).not_to_have_url(re.compile(r"/login/"))
    return tab


def luminance(css_colour: str) -> float:
    """The relative luminance (0 black, 1 white) of a computed `rgb(…)` colour."""
    channels = [float(c) / 255 for c in re.findall(r"[\d.]+", css_colour)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def colours(element: Locator) -> tuple[float, float]:
    """The luminance of the background and of the text of ``element``."""
    background, text = element.evaluate(
        "el => { const s = getComputedStyle(el); return [s.backgroundColor, s.color]; }"
    )
    return luminance(background), luminance(text)


def assert_dark(tab: Page) -> None:
    expect(tab.locator("html")).to_have_attribute("data-theme", "dark")
    background, text = colours(tab.locator("body"))
    assert background < 0.05, background
    assert text > 0.6, text


def assert_light(tab: Page) -> None:
    expect(tab.locator("html")).to_have_attribute("data-theme", "light")
    background, text = colours(tab.locator("body"))
    assert background > 0.8, background
    assert text < 0.05, text


def new_chat(tab: Page) -> None:
    """From the conversation list, start a conversation and wait for its socket."""
    tab.get_by_role("button", name="New chat").click()
    expect(tab).to_have_url(CHAT_URL)
    wait_until_connected(tab)


def test_dark_theme_follows_the_system_setting(
    new_context: Callable[..., BrowserContext], user: User, tmp_path: Path
) -> None:
    tab = logged_in(new_context(color_scheme="dark"), user.username)
    problems = script_problems(tab)
    expect(tab.get_by_role("heading", name="Conversations")).to_be_visible()
    assert_dark(tab)
    expect(tab.get_by_label("Theme")).to_have_value("system")

    new_chat(tab)
    assert_dark(tab)
    send(tab, "Show me code sim:markdown=1 sim:rate=0")
    answer = finished_answer(tab, "complete")
    code = answer.locator("pre code.hljs").first
    expect(code.locator("span.hljs-keyword").first).to_be_visible()
    code_background, code_text = colours(code)
    assert code_background < 0.05, code_background
    assert code_text > 0.5, code_text
    bubble_background, bubble_text = colours(answer)
    assert bubble_background < 0.05
    assert bubble_text > 0.6
    # Only the dark highlight.js theme applies.
    sheets = tab.eval_on_selector_all(
        "link[data-theme-for]", "links => links.map(l => [l.dataset.themeFor, l.media])"
    )
    assert sorted(sheets) == [["dark", "all"], ["light", "not all"]]
    tab.screenshot(path=tmp_path / "dark.png", full_page=True)

    # The system turning light is followed at once, code blocks included.
    tab.emulate_media(color_scheme="light")
    assert_light(tab)
    expect(code).to_have_css("background-color", "rgb(255, 255, 255)")
    assert problems == []


def test_theme_choice_switches_and_is_remembered(
    new_context: Callable[..., BrowserContext], user: User
) -> None:
    context = new_context(color_scheme="light")
    tab = logged_in(context, user.username)
    assert_light(tab)
    picker = tab.get_by_label("Theme")
    expect(picker).to_be_visible()

    picker.select_option("dark")
    assert_dark(tab)
    assert tab.evaluate(f"localStorage.getItem('{THEME_KEY}')") == "dark"
    tab.reload()
    assert_dark(tab)
    expect(tab.get_by_label("Theme")).to_have_value("dark")

    # A new page of the same browser, the chat page this time: dark from the start.
    other = context.new_page()
    other.goto("/")
    new_chat(other)
    assert_dark(other)
    expect(other.get_by_label("Theme")).to_have_value("dark")

    # Back to the system's (light) setting, in every open tab.
    other.get_by_label("Theme").select_option("system")
    assert_light(other)
    assert other.evaluate(f"localStorage.getItem('{THEME_KEY}')") is None
    assert_light(tab)

    # A light choice holds under a dark system.
    other.get_by_label("Theme").select_option("light")
    other.emulate_media(color_scheme="dark")
    other.reload()
    assert_light(other)


def test_theme_is_set_before_the_page_is_drawn(
    new_context: Callable[..., BrowserContext], user: User
) -> None:
    context = new_context(color_scheme="light")
    tab = logged_in(context, user.username)
    tab.evaluate(f"localStorage.setItem('{THEME_KEY}', 'dark')")
    # Record the theme as the <body> first exists, before any of it can be drawn.
    tab.add_init_script(
        """new MutationObserver((_, observer) => {
            if (document.body) {
                window.__themeAtBody = document.documentElement.dataset.theme || "none";
                observer.disconnect();
            }
        }).observe(document, {childList: true, subtree: true});"""
    )
    for path in ["/", "/password/"]:
        tab.goto(path)
        assert tab.evaluate("window.__themeAtBody") == "dark", path
        script = tab.evaluate(
            """() => {
                const s = document.querySelector('script[src*="/theme.js"]');
                return s && {
                    inHead: s.parentElement === document.head,
                    deferred: s.defer || s.async || s.type === "module",
                    afterStyles: [...document.head.querySelectorAll('link[rel=stylesheet]')]
                        .every(l => l.compareDocumentPosition(s)
                                    & Node.DOCUMENT_POSITION_FOLLOWING),
                };
            }"""
        )
        assert script == {"inHead": True, "deferred": False, "afterStyles": True}, path
