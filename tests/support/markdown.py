"""Hostile Markdown, and the check that a page drew none of it as a live link: for every
page that renders answers (the chat, the shared page)."""

import re

from playwright.sync_api import Page

HOSTILE = "\n\n".join(
    [
        "[click me](javascript:window.__pwned=1)",
        "![pic](javascript:window.__pwned=2)",
        "[jump](JaVaScRiPt:window.__pwned=3) [tabbed](java\tscript:window.__pwned=4)",
        "<img src=x onerror=window.__pwned=5;alert(5)>",
        "<script>window.__pwned=6; alert(6)</script>",
        '`<img src=x onerror="window.__pwned=7">` and `<script>alert(7)</script>`',
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        '<a href="javascript:alert(8)">raw link</a> <svg onload=alert(9)></svg>',
        "[" * 20_000 + "x" + "]" * 20_000,
        "*" * 20_000,
        "> " * 20_000 + "deep",
    ]
)


def assert_no_live_dangerous_urls(chat: Page) -> None:
    """No href, src or action on the message list is a scripting or data URL."""
    urls = chat.eval_on_selector_all(
        ".messages [href], .messages [src], .messages [action], .messages [formaction]",
        """els => els.flatMap(el => ["href", "src", "action", "formaction"]
                .map(name => el.getAttribute(name)).filter(v => v !== null))""",
    )
    for url in urls:
        scheme = re.sub(r"[\x00-\x20\x7f-\x9f]", "", url).lower()
        assert not scheme.startswith(("javascript:", "vbscript:", "data:")), url
