"""Looks right everywhere, in real Chromium: light and dark themes, phones, narrow screens.

The dark theme is tested under the system setting (`color_scheme="dark"`) and by the
header's picker; phones as a 390 x 844 touch screen with the conversation drawer; narrow
screens at 320 px with the widest things an answer holds (the simulator's `sim:markdown=1`:
a table and code) and a long unbroken word.
"""

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import BrowserContext, Locator, Page, expect

from streaming.models import Conversation
from tests.support.browser import (
    DRAFT_URL,
    composer,
    finished_answer,
    log_in,
    orm,
    script_problems,
    send,
    wait_until_connected,
)
from tests.support.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
NARROWEST = {"width": 320, "height": 640}
THEME_KEY = "chatsite-theme"


@pytest.fixture
def new_context(
    page: Page,
    server: DaphneServer,
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
    """From the conversation list, open a new chat (a draft until its first message)."""
    tab.get_by_role("button", name="New chat").click()
    expect(tab).to_have_url(DRAFT_URL)
    expect(tab.locator("#chat")).to_have_attribute("data-connection", "draft")


def page_scroll_width(tab: Page) -> int:
    return int(tab.evaluate("document.scrollingElement.scrollWidth"))


def conversations_of(user: User, count: int) -> list[Conversation]:
    def create() -> list[Conversation]:
        return [
            Conversation.objects.create(owner=user, title=f"Trip plan {n}") for n in range(count)
        ]

    return orm(create)


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


def assert_touch_sized(target: Locator) -> None:
    box = target.bounding_box()
    assert box is not None
    assert box["height"] >= 44, box
    assert box["width"] >= 44, box


def test_phone_has_a_drawer_and_the_messages_most_of_the_screen(
    new_context: Callable[..., BrowserContext], user: User, tmp_path: Path
) -> None:
    others = conversations_of(user, 3)
    phone = new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    tab = logged_in(phone, user.username, f"/c/{others[0].id}/")
    problems = script_problems(tab)
    wait_until_connected(tab)

    toggle = tab.get_by_role("button", name="Chats")
    drawer = tab.get_by_role("complementary", name="Conversations")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-controls", "sidebar")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(drawer).to_be_hidden()
    scroller = tab.locator("#messages-scroller").bounding_box()
    assert scroller is not None
    # Most of it, with the header's two rows (the title; the model picker, a finger high).
    assert scroller["height"] >= 0.6 * PHONE["height"], scroller
    expect(composer(tab)).to_have_attribute("placeholder", "Write a message…")
    # The placeholder fits the composer: nothing of it is scrolled out of sight.
    assert composer(tab).evaluate(
        "el => el.scrollHeight <= el.clientHeight && el.scrollWidth <= el.clientWidth"
    )
    for target in [toggle, tab.get_by_role("button", name="Send"), tab.get_by_label("Theme")]:
        assert_touch_sized(target)
    tab.screenshot(path=tmp_path / "phone-closed.png")

    toggle.tap()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(drawer).to_be_visible()
    links = drawer.get_by_role("link", name=re.compile(r"^Trip plan"))
    expect(links).to_have_count(3)
    expect(drawer.get_by_role("link", name="Trip plan 0")).to_be_focused()
    assert_touch_sized(links.first)
    expect(drawer).to_have_css("transform", "none")  # slid in
    tab.screenshot(path=tmp_path / "phone-open.png")

    tab.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(drawer).to_be_hidden()
    expect(toggle).to_be_focused()

    # A click beside the open drawer closes it; a conversation picked in it opens that one.
    toggle.tap()
    expect(drawer).to_be_visible()
    tab.mouse.click(PHONE["width"] - 10, PHONE["height"] // 2)
    expect(drawer).to_be_hidden()
    toggle.tap()
    drawer.get_by_role("link", name="Trip plan 2").tap()
    expect(tab).to_have_url(re.compile(rf"/c/{others[2].id}/$"))
    wait_until_connected(tab)
    expect(tab.get_by_role("button", name="Chats")).to_have_attribute("aria-expanded", "false")
    expect(tab.get_by_role("complementary", name="Conversations")).to_be_hidden()
    tab.go_back()
    wait_until_connected(tab)
    expect(tab.get_by_role("complementary", name="Conversations")).to_be_hidden()
    assert problems == []


@pytest.mark.parametrize("width", [1100, 390, 320])
def test_a_chat_header_keeps_the_title_and_the_model_picker_usable(
    new_context: Callable[..., BrowserContext], user: User, tmp_path: Path, width: int
) -> None:
    def long_titled() -> Conversation:
        return Conversation.objects.create(
            owner=user,
            title="Holiday plans for the whole family in the summer, with every train, ferry,"
            " hotel and museum we looked at",
        )

    conversation = orm(long_titled)
    phone = new_context(
        viewport={"width": width, "height": 700}, has_touch=width < 560, is_mobile=width < 560
    )
    tab = logged_in(phone, user.username, f"/c/{conversation.id}/")
    problems = script_problems(tab)
    wait_until_connected(tab)

    title = tab.get_by_role("heading", name="Holiday plans for the whole family")
    picker = tab.get_by_role("combobox", name="Model")
    title_box, picker_box = title.bounding_box(), picker.bounding_box()
    assert title_box is not None
    assert picker_box is not None
    # The title keeps room to be read, cut with an ellipsis; the picker shows a model's name
    # and takes a finger.
    assert title_box["width"] >= min(0.3 * width, 250), title_box
    expect(title).to_have_css("text-overflow", "ellipsis")
    if width < 560:  # a phone's: as wide as the header allows, and a finger high
        assert picker_box["width"] >= 0.4 * width, picker_box
        assert_touch_sized(picker)
    option_text = picker.evaluate("select => select.selectedOptions[0].text")
    assert (
        picker.evaluate(
            "(select, text) => { const c = document.createElement('canvas').getContext('2d');"
            " c.font = getComputedStyle(select).font; return c.measureText(text).width;"
            " }",
            option_text,
        )
        < picker_box["width"] - 24  # the select's arrow and padding
    )
    for name in ("Rename this conversation", "Delete"):
        button = tab.get_by_role("button", name=name)
        expect(button).to_be_visible()
        box = button.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= width, (name, box)
    # Nothing scrolls sideways; on a phone the drawer opens below the whole header.
    assert tab.evaluate("document.documentElement.scrollWidth") <= width
    if width >= 560:
        assert problems == []
        return
    header = tab.locator(".chat-header").bounding_box()
    tab.get_by_role("button", name="Chats").tap()
    drawer = tab.get_by_role("complementary", name="Conversations")
    expect(drawer).to_have_css("transform", "none")
    drawer_box = drawer.bounding_box()
    assert header is not None
    assert drawer_box is not None
    assert drawer_box["y"] >= header["y"] + header["height"] - 1, (drawer_box, header)
    tab.keyboard.press("Escape")
    tab.screenshot(path=tmp_path / f"phone-{width}.png")
    assert problems == []


def test_drawer_keeps_out_of_the_way_of_keyboard_and_wide_screens(
    new_context: Callable[..., BrowserContext], user: User
) -> None:
    first, _ = conversations_of(user, 2)
    tab = logged_in(new_context(viewport=PHONE), user.username)
    tab.goto(f"/c/{first.id}/")
    wait_until_connected(tab)
    focus_in_drawer = "document.getElementById('sidebar').contains(document.activeElement)"
    # Closed, nothing in it takes the focus: Tab back from the composer to the page's start
    # never lands there.
    composer(tab).focus()
    for _ in range(12):
        tab.keyboard.press("Shift+Tab")
        assert not tab.evaluate(focus_in_drawer)
    # Opened by the keyboard, Tab walks through it and out, closing it behind: it traps nothing.
    toggle = tab.get_by_role("button", name="Chats")
    toggle.focus()
    tab.keyboard.press("Enter")
    drawer = tab.locator("#sidebar")
    expect(drawer).to_be_visible()
    expect(drawer.locator(":focus")).to_have_count(1)
    steps = 0
    while tab.evaluate(focus_in_drawer):
        assert steps < 10, "the focus never left the drawer"
        tab.keyboard.press("Shift+Tab")
        steps += 1
    assert steps >= 3  # the current conversation, "All conversations", "New chat"
    expect(drawer).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")

    # Wide again, the list is a sidebar and the button is gone.
    tab.set_viewport_size({"width": 1100, "height": 760})
    expect(drawer).to_be_visible()
    expect(toggle).to_be_hidden()
    expect(composer(tab)).to_have_attribute(
        "placeholder", "Write a message… (Enter sends, Shift+Enter adds a line)"
    )


def test_nothing_scrolls_sideways_at_320_px(
    new_context: Callable[..., BrowserContext], user: User, tmp_path: Path
) -> None:
    conversations_of(user, 2)
    tab = logged_in(new_context(viewport=NARROWEST, has_touch=True), user.username)
    problems = script_problems(tab)
    expect(tab.get_by_role("heading", name="Conversations")).to_be_visible()
    assert page_scroll_width(tab) <= NARROWEST["width"]

    new_chat(tab)
    word = "Supercalifragilistic" * 15 + uuid.uuid4().hex
    send(tab, f"{word} sim:markdown=1 sim:rate=0")
    answer = finished_answer(tab, "complete")
    expect(answer.locator("table")).to_have_count(1)
    expect(answer.locator("pre code.hljs")).to_have_count(2)
    expect(tab.locator(".message--user .message-content")).to_contain_text(word)
    assert page_scroll_width(tab) <= NARROWEST["width"]
    # The table and the code scroll inside the answer instead.
    for wide in [answer.locator("table"), answer.locator("pre code.hljs").first]:
        box = wide.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= NARROWEST["width"], box
    tab.get_by_role("button", name="Chats").tap()
    expect(tab.locator("#sidebar")).to_have_css("transform", "none")
    assert page_scroll_width(tab) <= NARROWEST["width"]
    tab.screenshot(path=tmp_path / "narrowest.png")
    assert problems == []


def test_empty_list_and_empty_chat_say_what_to_do(
    new_context: Callable[..., BrowserContext], user: User
) -> None:
    tab = logged_in(new_context(), user.username)
    empty = tab.locator(".empty-state")
    expect(empty).to_contain_text("No conversations yet")
    expect(empty).to_contain_text("New chat")

    new_chat(tab)
    hint = tab.locator("#chat-empty")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("No messages yet")
    expect(hint).to_contain_text("Enter sends")
    send(tab, "hello sim:tokens=3 sim:rate=0")
    expect(hint).to_be_hidden()
    finished_answer(tab, "complete")
