"""Attachments in real Chromium: files come in by the paperclip's file input, a drop and a
paste, upload at once with their progress, show in the composer's tray (a failed one with
the server's words), go with the message, and show in it; a refusal keeps the text and the
files, an edit resends them, and a new chat takes them too.

What the model was sent is read from the simulator (its `sim:parts=1` answers with a line
per part of the message it received) and from its record of requests; what was stored, from
the database and the server's media folder, this test's own.
"""

import base64
import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, Route, expect

from streaming.models import Attachment, Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.attaching import (
    DROP,
    DROP_ON_TARGET,
    PASTE,
    attach,
    chip,
    fetched,
    payload,
    send_button,
    tray,
    until_in_page,
)
from tests.support.axe import axe_violations
from tests.support.browser import (
    CHAT_URL,
    composer,
    finished_answer,
    open_new_chat,
    open_saved_chat,
    orm,
    script_problems,
    wait_until_connected,
)
from tests.support.files import SECRET, pdf, png, words
from tests.support.waiting import poll_until

pytestmark = pytest.mark.django_db(transaction=True)

PYTHON = b'def greet(name):\n    return f"Hello, {name}"\n'
NO_VISION = {"OPENAI_VISION": "false"}


@pytest.fixture
def server_env(request: pytest.FixtureRequest, media: Path) -> dict[str, str]:
    """The server keeps files in the test's own folder (``media``, where the test process's
    storage reads them too); a test may add settings with an indirect parameter."""
    return {"MEDIA_ROOT": str(media), **getattr(request, "param", {})}


def ask(page: Page, text: str) -> Locator:
    """Send ``text`` with what the tray holds; the finished answer to it."""
    answers = page.locator('.message--assistant:not([data-status="streaming"])')
    count = answers.count()
    composer(page).fill(text)
    composer(page).press("Enter")
    expect(answers).to_have_count(count + 1, timeout=30_000)
    return finished_answer(page, "complete")


def last_user_content(simulator: SimulatorThread, marker: str) -> Any:
    """The content of the last user message of the newest request that carried ``marker``."""
    for request in reversed(simulator.requests):
        content = request["messages"][-1]["content"]
        if marker in str(content):
            return content
    raise AssertionError(f"no request carried {marker}")


def stored_bytes(attachment_id: str) -> bytes:
    def read() -> bytes:
        with Attachment.objects.get(pk=attachment_id).file.open("rb") as handle:
            return bytes(handle.read())

    return orm(read)


def stored_files(media: Path) -> list[Path]:
    return sorted(p for p in media.rglob("*") if p.is_file())


def test_the_file_input_uploads_with_progress_and_the_message_carries_the_files(
    page: Page, user: User, simulator: SimulatorThread, media: Path, tmp_path: Path
) -> None:
    problems = script_problems(page)
    open_saved_chat(page, user)
    # The uploads wait until the test lets them go: their progress is seen, and Send waits.
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/attachments/", hold)
    attach(
        page, payload("shot.png", png(), "image/png"), payload("greet.py", PYTHON, "text/x-python")
    )
    expect(tray(page)).to_be_visible()
    expect(page.get_by_role("progressbar", name="Uploading shot.png")).to_be_visible()
    expect(page.get_by_role("progressbar", name="Uploading greet.py")).to_be_visible()
    composer(page).fill("what is this? sim:parts=1")
    expect(send_button(page)).to_have_text("Uploading…")
    expect(send_button(page)).to_be_disabled()
    page.screenshot(path=tmp_path / "uploading.png")
    until_in_page(page, lambda: len(held) == 2)
    for route in held:
        route.continue_()
    page.unroute("**/attachments/", hold)

    # Uploaded: the image as a thumbnail from its url, the source file as its name and size.
    expect(chip(page, "shot.png").locator("img.tray-thumb")).to_have_attribute("alt", "shot.png")
    expect(chip(page, "greet.py")).to_contain_text(f"greet.py · {len(PYTHON)} B")
    expect(tray(page).get_by_role("progressbar")).to_have_count(0)
    expect(send_button(page)).to_have_text("Send")
    expect(send_button(page)).to_be_enabled()
    page.screenshot(path=tmp_path / "uploaded.png")

    answer = ask(page, "what is this? sim:parts=1")
    expect(tray(page)).to_be_hidden()  # sent: the tray is empty again
    image, source = orm(
        lambda: (
            Attachment.objects.get(owner=user, name="shot.png"),
            Attachment.objects.get(owner=user, name="greet.py"),
        )
    )
    kept = stored_bytes(str(image.pk))
    assert kept.startswith(b"\x89PNG")
    assert SECRET.encode() not in kept
    assert source.text == PYTHON.decode()
    # The answer lists what the model received: the question with the file as a text part,
    # and the image, its bytes the ones kept.
    sent = last_user_content(simulator, "what is this?")
    text = f'<file name="greet.py">\n{PYTHON.decode()}\n</file>\n\nwhat is this? sim:parts=1'
    assert sent[0] == {"type": "text", "text": text}
    lines = (answer.locator(".message-content").text_content() or "").split("part ")
    shown = [" ".join(line.split()) for line in lines if line.strip()]
    text_hash = hashlib.sha256(text.encode()).hexdigest()
    image_hash = hashlib.sha256(kept).hexdigest()
    assert shown == [
        f"1: text {len(text)} chars sha256={text_hash}",
        f"2: image_url image/png {len(kept)} bytes sha256={image_hash}",
    ]
    assert len(stored_files(media)) == 2

    # The message shows them: the thumbnail opens the image, the chip downloads the source.
    question = page.locator(".message--user").last
    thumb = question.get_by_role("img", name="shot.png")
    expect(thumb).to_be_visible()
    link = question.locator("a.message-image")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener")
    href = str(link.get_attribute("href"))
    assert href == f"/attachments/{image.pk}/"
    assert thumb.evaluate("img => img.naturalWidth") > 0
    got = fetched(page, href)
    assert (got["status"], got["type"]) == (200, "image/png")
    download = question.locator("a.file-chip")
    expect(download).to_have_attribute("download", "greet.py")
    expect(download).to_contain_text("greet.py")
    got = fetched(page, str(download.get_attribute("href")))
    assert got["status"] == 200
    assert got["disposition"].startswith("attachment")
    page.screenshot(path=tmp_path / "sent.png")

    # Drawn again by the server's page, they are still there.
    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message--user").last.get_by_role("img", name="shot.png")).to_be_visible()
    expect(page.locator(".message--user").last.locator("a.file-chip")).to_have_count(1)
    assert problems == []


def test_files_dropped_on_the_conversation_are_attached(
    page: Page, user: User, simulator: SimulatorThread, tmp_path: Path
) -> None:
    open_saved_chat(page, user)
    drop_target = page.locator("#drop-target")
    expect(drop_target).to_be_hidden()
    report = pdf(words("Revenue rose by a third"))
    page.evaluate(DROP, ["report.pdf", "application/pdf", base64.b64encode(report).decode()])
    expect(drop_target).to_be_visible()
    expect(drop_target).to_have_text("Drop files to attach them")
    page.screenshot(path=tmp_path / "dragging.png")
    assert page.evaluate(DROP_ON_TARGET) == [True, True]  # taken, not opened as a page
    expect(drop_target).to_be_hidden()
    expect(chip(page, "report.pdf").locator(".file-icon")).to_have_text("PDF")
    expect(send_button(page)).to_have_text("Send")

    marker = uuid.uuid4().hex[:8]
    answer = ask(page, f"sum it up {marker} sim:parts=1")
    sent = last_user_content(simulator, marker)
    assert "Revenue rose by a third" in sent
    assert '<file name="report.pdf">' in sent
    expect(answer.locator(".message-content")).to_contain_text("part 1: text")
    expect(page.locator(".message--user").last.locator("a.file-chip")).to_contain_text("report.pdf")


def test_a_pasted_image_is_attached_and_goes_alone(
    page: Page, user: User, simulator: SimulatorThread
) -> None:
    open_saved_chat(page, user)
    screenshot = png(120, 80)
    assert page.evaluate(PASTE, ["image.png", base64.b64encode(screenshot).decode()]) is True
    expect(chip(page, "image.png").locator("img.tray-thumb")).to_be_visible()
    expect(composer(page)).to_have_value("")  # nothing pasted as text
    # A file alone is a message: Send is on with no text.
    expect(send_button(page)).to_be_enabled()
    requests = len(simulator.requests)
    send_button(page).click()
    finished_answer(page, "complete")
    poll_until(lambda: len(simulator.requests) > requests, "the request to the model")
    (part,) = simulator.requests[-1]["messages"][-1]["content"]
    assert part["type"] == "image_url"
    assert part["image_url"]["url"].startswith("data:image/png;base64,")
    assert SECRET.encode() not in base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    expect(page.locator(".message--user").last.get_by_role("img", name="image.png")).to_be_visible()


def test_a_refused_file_shows_why_nothing_of_it_is_kept_and_the_rest_goes(
    page: Page, user: User, simulator: SimulatorThread, media: Path, tmp_path: Path
) -> None:
    problems = script_problems(page)
    open_saved_chat(page, user)
    attach(
        page,
        payload("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "image/svg+xml"),
        payload("photo.png", b"<!doctype html><script>alert(1)</script>", "image/png"),
        payload("notes.txt", b"Buy milk.\n", "text/plain"),
    )
    svg, fake = chip(page, "drawing.svg"), chip(page, "photo.png")
    expect(svg).to_have_attribute("data-status", "failed")
    expect(svg.locator(".tray-error")).to_have_text(
        "SVG images are not accepted; save drawing.svg as a PNG or JPEG and attach that."
    )
    expect(fake).to_have_attribute("data-status", "failed")
    expect(fake.locator(".tray-error")).to_have_text(
        "photo.png is not a PNG, JPEG, WebP or GIF image, the images that are accepted."
    )
    expect(chip(page, "notes.txt")).to_have_attribute("data-status", "done")
    # Said to a screen reader too, by the chat's live region.
    expect(page.locator("#chat-announcer")).to_contain_text("photo.png is not a PNG")
    expect(page.locator("#chat-announcer")).to_contain_text("SVG images are not accepted")
    assert orm(lambda: list(Attachment.objects.values_list("name", flat=True))) == ["notes.txt"]
    assert len(stored_files(media)) == 1
    expect(send_button(page)).to_be_enabled()

    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        page.screenshot(path=tmp_path / f"refused-{theme}.png")
        assert axe_violations(page) == [], theme
    # On a phone, each chip and its words fit the width: nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 760})
    expect(page.locator("#sidebar")).to_be_hidden()  # a drawer now, closed
    page.screenshot(path=tmp_path / "refused-phone.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1100, "height": 760})

    # A failed file is removed by its button; the keyboard moves to the next chip's.
    svg.get_by_role("button", name="Remove drawing.svg").click()
    expect(svg).to_have_count(0)
    expect(page.get_by_role("button", name="Remove photo.png")).to_be_focused()

    marker = uuid.uuid4().hex[:8]
    ask(page, f"and this {marker}")
    assert '<file name="notes.txt">\nBuy milk.\n\n</file>' in last_user_content(simulator, marker)
    expect(tray(page)).to_be_hidden()  # the failed one went with the rest
    assert problems == []


@pytest.mark.parametrize("server_env", [NO_VISION], indirect=True, ids=["no-vision"])
def test_a_refused_message_keeps_its_text_and_files(
    page: Page, user: User, simulator: SimulatorThread
) -> None:
    conversation = open_saved_chat(page, user)
    attach(
        page,
        payload("chart.png", png(), "image/png"),
        payload("data.csv", b"a,b\n1,2\n", "text/csv"),
    )
    expect(chip(page, "chart.png")).to_have_attribute("data-status", "done")
    expect(chip(page, "data.csv")).to_have_attribute("data-status", "done")
    requests = len(simulator.requests)
    composer(page).fill("What does the chart show?")
    composer(page).press("Enter")
    expect(page.locator("#composer-alert")).to_contain_text("does not see images")
    # Nothing was sent or saved; the text and both files are where they were.
    expect(composer(page)).to_have_value("What does the chart show?")
    expect(tray(page).locator(".tray-item")).to_have_count(2)
    expect(chip(page, "chart.png")).to_have_attribute("data-status", "done")
    expect(page.locator(".message")).to_have_count(0)
    expect(send_button(page)).to_be_enabled()
    assert orm(lambda: Message.objects.filter(conversation=conversation).count()) == 0
    assert len(simulator.requests) == requests

    # Without the image, the same message goes, with the file that stayed.
    chip(page, "chart.png").get_by_role("button", name="Remove chart.png").click()
    marker = uuid.uuid4().hex[:8]
    ask(page, f"What does the table show? {marker}")
    assert '<file name="data.csv">' in last_user_content(simulator, marker)


def test_an_edit_keeps_the_files_of_the_message_it_edits(
    page: Page, user: User, simulator: SimulatorThread, tmp_path: Path
) -> None:
    open_saved_chat(page, user)
    attach(page, payload("todo.txt", b"Water the plants.\n", "text/plain"))
    expect(chip(page, "todo.txt")).to_have_attribute("data-status", "done")
    ask(page, "first sim:parts=1")
    question = page.locator(".message--user").last
    expect(question.locator("a.file-chip")).to_contain_text("todo.txt")

    question.hover()
    question.get_by_role("button", name="Edit this message").click()
    editor = question.get_by_role("textbox", name="Edit your message")
    expect(editor).to_have_value("first sim:parts=1")
    # The edit starts with the message's files, each removable.
    files = question.get_by_role("list", name="Files of this message")
    expect(files.get_by_role("button", name="Remove todo.txt")).to_be_visible()
    page.screenshot(path=tmp_path / "editing.png")
    marker = uuid.uuid4().hex[:8]
    editor.fill(f"edited {marker} sim:parts=1")
    editor.press("Enter")

    edited = page.locator(".message--user").filter(has_text=marker)
    expect(edited.locator(".message-version")).to_have_text("2 / 2")
    expect(edited.locator("a.file-chip")).to_contain_text("todo.txt")
    finished_answer(page, "complete")
    assert '<file name="todo.txt">\nWater the plants.\n\n</file>' in last_user_content(
        simulator, marker
    )
    ids = orm(
        lambda: [
            list(m.attachments.values_list("name", flat=True))
            for m in Message.objects.filter(role="user").order_by("created_at")
        ]
    )
    assert ids == [["todo.txt"], ["todo.txt"]]

    # The first version shows its own file too.
    edited.get_by_role("button", name="Previous version").click()
    first = page.locator(".message--user").filter(has_text="first sim:parts=1")
    expect(first.locator("a.file-chip")).to_contain_text("todo.txt")

    # A file removed from an edit is not sent with it; the keyboard stays in the editor.
    first.hover()
    first.get_by_role("button", name="Edit this message").click()
    first.get_by_role("button", name="Remove todo.txt").click()
    editor = first.get_by_role("textbox", name="Edit your message")
    expect(editor).to_be_focused()
    without = uuid.uuid4().hex[:8]
    editor.fill(f"no file {without}")
    editor.press("Enter")
    latest = page.locator(".message--user").filter(has_text=without)
    expect(latest.locator(".message-version")).to_have_text("3 / 3")
    expect(latest.locator(".message-files")).to_have_count(0)
    finished_answer(page, "complete")
    assert last_user_content(simulator, without) == f"no file {without}"


def test_a_new_chat_takes_files_with_its_first_message(
    page: Page, user: User, simulator: SimulatorThread
) -> None:
    open_new_chat(page, user.username)
    attach(page, payload("plan.md", b"# Plan\n\n1. Ship it.\n", "text/markdown"))
    expect(chip(page, "plan.md")).to_have_attribute("data-status", "done")
    marker = uuid.uuid4().hex[:8]
    composer(page).fill(f"review {marker} sim:parts=1")
    composer(page).press("Enter")
    expect(page).to_have_url(CHAT_URL)
    wait_until_connected(page)
    finished_answer(page, "complete")
    assert '<file name="plan.md">' in last_user_content(simulator, marker)
    expect(page.locator(".message--user").last.locator("a.file-chip")).to_contain_text("plan.md")
    expect(tray(page)).to_be_hidden()
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")
    owner = orm(
        lambda: (
            Attachment.objects.get(name="plan.md").conversation_id,
            Conversation.objects.get().pk,
        )
    )
    assert str(owner[0]) == str(owner[1]) == conversation_id
