"""Driving the composer's files in Chromium: files given to its file input, dropped on the
conversation and pasted into the message box (synthetic DataTransfer events, as a person's
browser would send them), the tray's chips, and fetching a file as its owner."""

import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import FilePayload, Locator, Page


def payload(name: str, data: bytes, mime: str) -> FilePayload:
    """A file as the file input is given it."""
    return {"name": name, "mimeType": mime, "buffer": data}


def tray(page: Page) -> Locator:
    return page.locator("#composer-tray")


def chip(page: Page, name: str) -> Locator:
    """The tray's chip of the file ``name`` (by its remove button's label)."""
    return (
        tray(page)
        .locator(".tray-item")
        .filter(has=page.get_by_role("button", name=f"Remove {name}", exact=True))
    )


def send_button(page: Page) -> Locator:
    return page.locator("#composer-send")


def attach(page: Page, *files: FilePayload) -> None:
    page.get_by_label("Attach files").set_input_files(list(files))


def until_in_page(page: Page, condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the page's events run until ``condition`` holds, or fail: waiting.poll_until for
    what only Playwright's own calls move on (a route handler runs within one)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        page.wait_for_timeout(20)  # the interval between two looks, not a guess


def fetched(page: Page, url: str) -> dict[str, Any]:
    """GET ``url`` from the page, as its owner: status and headers."""
    answer: dict[str, Any] = page.evaluate(
        """async (url) => {
            const { status, headers } = await fetch(url);
            return { status, type: headers.get("content-type"),
                     disposition: headers.get("content-disposition") };
        }""",
        url,
    )
    return answer


#: Start dragging a file ([name, type, its bytes in base64]) over the conversation, as a
#: person's drag carries it (kept for DROP_ON_TARGET).
DROP = """async ([name, type, data]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type }));
    window.dropped = transfer;
    const at = document.getElementById("messages-scroller");
    const init = { bubbles: true, cancelable: true, dataTransfer: transfer };
    at.dispatchEvent(new DragEvent("dragenter", init));
}"""

#: Drag it over the drop target and drop it there: whether the page took each event.
DROP_ON_TARGET = """() => {
    const target = document.getElementById("drop-target");
    const init = { bubbles: true, cancelable: true, dataTransfer: window.dropped };
    const over = new DragEvent("dragover", init);
    target.dispatchEvent(over);
    const drop = new DragEvent("drop", init);
    target.dispatchEvent(drop);
    return [over.defaultPrevented, drop.defaultPrevented];
}"""


#: Paste an image ([name, its bytes in base64]) into the message box: whether the page took it.
PASTE = """async ([name, data]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type: "image/png" }));
    const paste = new ClipboardEvent("paste", {
        bubbles: true, cancelable: true, clipboardData: transfer,
    });
    document.getElementById("composer-input").dispatchEvent(paste);
    return paste.defaultPrevented;
}"""
