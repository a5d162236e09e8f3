"""Settings, export and import, and usage in real Chromium against a real daphne: the
default system prompt reaching a new chat's model, both exports downloaded and the JSON
imported back, the usage page and the conversation's token total after an answer."""

import json
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db.models import Sum
from playwright.sync_api import Page, expect

from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.browser import (
    CHAT_URL,
    DRAFT_URL,
    finished_answer,
    log_in,
    open_new_chat,
    orm,
    script_problems,
    send,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_default_system_prompt_is_given_to_a_new_chat(
    page: Page,
    user: User,
    simulator: SimulatorThread,
) -> None:
    problems = script_problems(page)
    page.goto("/login/")
    log_in(page, user.username)
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Settings").click()
    prompt = "You answer in French.\nKeep it short."
    page.get_by_label("Default system prompt").fill(prompt)
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    expect(page.get_by_label("Default system prompt")).to_have_value(prompt)

    page.get_by_role("link", name="chatsite").click()
    page.get_by_role("button", name="New chat").click()
    # A draft, shown with the default: the first message makes the conversation with it.
    expect(page).to_have_url(DRAFT_URL)
    expect(page.locator("#chat")).to_have_attribute("data-connection", "draft")
    expect(page.locator("#system-prompt-summary")).to_have_text("You answer in French.")
    marker = uuid.uuid4().hex[:8]
    send(page, f"hello {marker} sim:tokens=2")
    finished_answer(page, "complete")
    expect(page).to_have_url(CHAT_URL)

    (request,) = [r["messages"] for r in simulator.requests if marker in str(r["messages"])]
    assert request[0] == {"role": "system", "content": prompt}
    assert orm(lambda: Conversation.objects.get(owner=user).system_prompt) == prompt
    assert problems == []


def test_exports_download_and_the_json_imports_as_a_new_conversation(
    page: Page,
    user: User,
    tmp_path: Path,
) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    send(page, "Plan a day in Porto sim:tokens=5")
    finished_answer(page, "complete")
    original = orm(lambda: Conversation.objects.get(owner=user))

    export = page.locator("#chat-export")
    export.get_by_text("Export").click()
    with page.expect_download() as markdown_download:
        export.get_by_role("link", name="Markdown").click()
    markdown = markdown_download.value
    assert markdown.suggested_filename == "plan-a-day-in-porto-simtokens5.md"
    text = Path(markdown.path()).read_text()
    assert text.startswith("# Plan a day in Porto sim:tokens=5\n")
    assert "### You · " in text
    assert "### Assistant · " in text

    if not export.get_by_role("link", name="JSON").is_visible():
        export.get_by_text("Export").click()
    with page.expect_download() as json_download:
        export.get_by_role("link", name="JSON").click()
    saved = tmp_path / json_download.value.suggested_filename
    json_download.value.save_as(saved)
    document = json.loads(saved.read_text())
    assert [c["id"] for c in document["conversations"]] == [str(original.pk)]
    assert len(document["conversations"][0]["messages"]) == 2

    page.get_by_role("navigation", name="Account").get_by_role("link", name="Settings").click()
    page.get_by_label(
        "Import conversations from an export file (JSON, or ZIP with attached files)"
    ).set_input_files(saved)
    page.get_by_role("button", name="Import", exact=True).click()

    expect(page.get_by_text("Imported 1 conversation.")).to_be_visible()
    titles = page.locator(".conversation-list .conversation-title")
    expect(titles).to_have_text(["Plan a day in Porto sim:tokens=5"] * 2)
    assert orm(lambda: Conversation.objects.filter(owner=user).count()) == 2
    imported = orm(lambda: Conversation.objects.exclude(pk=original.pk).get(owner=user))
    page.goto(f"/c/{imported.pk}/")
    wait_until_connected(page)
    expect(page.locator(".message")).to_have_count(2)
    expect(page.locator(".message--assistant")).to_have_attribute("data-status", "complete")

    # The whole account, streamed by daphne as one file: both, importable again.
    page.goto("/settings/")
    with page.expect_download() as account_download:
        page.get_by_role("link", name="Export all conversations (JSON)").click()
    account = json.loads(Path(account_download.value.path()).read_text())
    assert account["format"] == "chatsite-export"
    assert sorted(c["id"] for c in account["conversations"]) == sorted(
        [str(original.pk), str(imported.pk)]
    )

    # A file that is not an export: said so, nothing added.
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "chatsite-export", "version": 99, "conversations": []}')
    page.get_by_label(
        "Import conversations from an export file (JSON, or ZIP with attached files)"
    ).set_input_files(bad)
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#import-problems")).to_contain_text("this site reads versions 1 and 2")
    assert orm(lambda: Conversation.objects.filter(owner=user).count()) == 2
    assert problems == []


def test_the_conversations_total_and_the_usage_page_follow_each_answer(
    page: Page,
    user: User,
) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    total = page.locator("#chat-usage")
    expect(total).to_have_text("0 tokens in · 0 out")

    send(page, "first sim:tokens=3")
    finished_answer(page, "complete")
    first = orm(lambda: Message.objects.get(role="assistant", conversation__owner=user).usage)
    assert first is not None
    expect(total).to_have_text(
        f"{first['prompt_tokens']} tokens in · {first['completion_tokens']} out"
    )

    send(page, "second sim:tokens=4")
    expect(page.locator('.message--assistant[data-status="complete"]')).to_have_count(2)

    def sums() -> dict[str, int]:
        return Message.objects.filter(conversation__owner=user).aggregate(
            prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
        )

    both = orm(sums)
    expected = f"{both['prompt']} tokens in · {both['completion']} out"
    expect(total).to_have_text(expected)  # without a reload
    page.reload()
    wait_until_connected(page)
    expect(total).to_have_text(expected)  # the same, from the server

    page.get_by_role("navigation", name="Account").get_by_role("link", name="Usage").click()
    table = page.locator("#usage-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    row = table.locator("tbody tr").first
    expect(row.locator('[data-label="Model"]')).to_have_text("simulated · Simulator")
    expect(row.locator('[data-label="Answers"]')).to_have_text("2")
    expect(row.locator('[data-label="Tokens in"]')).to_have_text(str(both["prompt"]))
    expect(row.locator('[data-label="Tokens out"]')).to_have_text(str(both["completion"]))
    expect(table.locator('#usage-totals [data-label="Total"]')).to_have_text(
        str(both["prompt"] + both["completion"])
    )

    # On a phone, each row reads as labelled lines, and nothing scrolls sideways.
    page.set_viewport_size({"width": 320, "height": 700})
    expect(table.locator("thead")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert problems == []
