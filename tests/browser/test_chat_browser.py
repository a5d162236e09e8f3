"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against a real daphne.

The server is a separate process on the test database, answering with the simulator; the
browser logs in through the real login form. Every test saves a screenshot of its key moment
in its `tmp_path`, for a person to look at when it fails.
"""

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import (
    Page,
    WebSocketRoute,
    expect,
)

from streaming.models import Conversation, Message
from streaming.services.answers import INTERRUPTED_MESSAGE
from streaming.simulator.payloads import STREAM_ERROR_MESSAGE
from tests.support.browser import (
    DRAFT_URL,
    SLOW_ANSWER,
    SLOW_ANSWER_TOKENS,
    bubble_text,
    composer,
    finished_answer,
    log_in,
    open_new_chat,
    open_saved_chat,
    orm,
    orm_until,
    plain,
    received_frames,
    script_problems,
    send,
    streaming_answer,
    wait_for_more_text,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_answer_streams_and_is_kept_after_reload(page: Page, user: User, tmp_path: Path) -> None:
    frames = received_frames(page)
    # Saved already, so every delta of the answer comes over this page's socket (a new
    # chat's page connects once its first message is saved, by when some may be in the
    # snapshot: see test_conversations_browser.py).
    open_saved_chat(page, user)
    # Markup in the text must come out as text: the simulator repeats it in its answer too.
    prompt = "Tell me a <b>story</b> sim:tokens=40 sim:rate=40"

    composer(page).fill(prompt)
    composer(page).press("Enter")

    # The first message names the conversation at once, without a reload.
    expect(page.locator("#chat-title")).to_have_text(prompt)
    expect(page.locator('.sidebar-list a[aria-current="page"]')).to_have_text(prompt)
    user_bubble = page.locator(".message--user")
    expect(user_bubble).to_have_count(1)
    expect(user_bubble.locator(".message-content")).to_have_text(prompt)
    # While it streams, the bubble already shows some text and the typing indicator; the
    # user may write the next message but not send it.
    streaming = page.locator('.message--assistant[data-status="streaming"]')
    expect(streaming.locator(".typing")).to_be_visible()
    expect(streaming.locator(".message-content")).not_to_have_text("")
    composer(page).fill("next question")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    page.screenshot(path=tmp_path / "streaming.png")

    bubble = finished_answer(page, "complete")
    streamed = bubble_text(bubble)
    assert streamed
    assert "<b>story</b>" in streamed
    expect(bubble.locator(".typing")).to_have_count(0)
    # Prompt and answer apart: "N tokens" of both read as the answer's length.
    saved_usage = orm(lambda: Message.objects.get(role="assistant", conversation__owner=user).usage)
    assert saved_usage is not None
    sent, written = saved_usage["prompt_tokens"], saved_usage["completion_tokens"]
    usage_text = f"{sent} tokens in · {written} out"
    expect(bubble.locator(".message-usage")).to_have_text(usage_text)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    deltas = [f for f in frames if f["type"] == "delta"]
    assert len(deltas) > 1, "the answer arrived in one piece, not streamed"
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert plain("".join(d["text"] for d in deltas)) == streamed
    page.screenshot(path=tmp_path / "complete.png")

    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message")).to_have_count(2)
    expect(page.locator(".message-usage")).to_have_text(usage_text)  # the same, from the server
    expect(page.locator(".message--user .message-content")).to_have_text(prompt)
    assert bubble_text(page.locator(".message--assistant")) == streamed
    expect(page.locator(".messages b")).to_have_count(0)

    # The history is in the HTML itself: a browser without JavaScript sees it too.
    no_js = page.context.browser.new_context(  # type: ignore[union-attr]
        storage_state=page.context.storage_state(), java_script_enabled=False
    )
    try:
        no_js_page = no_js.new_page()
        no_js_page.goto(page.url)
        assert bubble_text(no_js_page.locator(".message--assistant")) == streamed
    finally:
        no_js.close()

    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.COMPLETE
    assert plain(answer.content) == streamed


def test_composer_shift_enter_inserts_newline_without_sending(
    page: Page, user: User, tmp_path: Path
) -> None:
    open_new_chat(page, user.username)
    box = composer(page)

    box.fill("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")

    expect(box).to_have_value("first line\nsecond line")
    expect(page.locator(".message")).to_have_count(0)
    page.screenshot(path=tmp_path / "shift-enter.png")
    assert orm(lambda: Message.objects.filter(conversation__owner=user).count()) == 0

    # Frames are handled in order: had Shift+Enter sent anything, it would be saved first.
    box.press("Enter")
    expect(page.locator('.message--user[data-status="complete"]')).to_have_count(1)
    expect(page.locator(".message--user .message-content")).to_have_text("first line\nsecond line")
    finished_answer(page, "complete")
    sent = orm(lambda: list(Message.objects.filter(conversation__owner=user, role="user")))
    assert [m.content for m in sent] == ["first line\nsecond line"]


def test_reply_http_error_shows_provider_message(page: Page, user: User, tmp_path: Path) -> None:
    open_new_chat(page, user.username)

    composer(page).fill("Hello sim:status=500")
    composer(page).press("Enter")

    bubble = finished_answer(page, "error")
    expect(bubble.locator(".message-error")).to_be_visible()
    expect(bubble.locator(".message-error")).to_have_text(STREAM_ERROR_MESSAGE)
    expect(bubble.locator(".message-status")).to_have_text("Failed")
    expect(bubble.locator(".message-content")).to_have_text("")
    # The failure ends the answer: the user may write again.
    composer(page).fill("again")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    page.screenshot(path=tmp_path / "http-error.png")

    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.ERROR
    assert answer.content == ""
    assert answer.error == STREAM_ERROR_MESSAGE


def test_reply_error_midstream_keeps_partial_text(page: Page, user: User, tmp_path: Path) -> None:
    open_new_chat(page, user.username)

    composer(page).fill("Hello sim:fault=error sim:after=3")
    composer(page).press("Enter")

    bubble = finished_answer(page, "error")
    partial = bubble_text(bubble)
    assert partial
    expect(bubble.locator(".message-content")).to_be_visible()
    expect(bubble.locator(".message-error")).to_have_text(STREAM_ERROR_MESSAGE)
    page.screenshot(path=tmp_path / "midstream-error.png")

    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.ERROR
    assert plain(answer.content) == partial
    assert answer.error == STREAM_ERROR_MESSAGE

    # After a reload the partial text and the error are still there, rendered by the server.
    page.reload()
    bubble = page.locator(".message--assistant")
    expect(bubble.locator(".message-content")).to_have_text(partial)
    expect(bubble.locator(".message-error")).to_have_text(STREAM_ERROR_MESSAGE)


def test_chat_page_anonymous_redirects_to_login_and_back(
    page: Page, user: User, tmp_path: Path
) -> None:
    conversation = orm(lambda: Conversation.objects.create(owner=user, title="Holiday plans"))
    chat_path = f"/c/{conversation.id}/"

    page.goto(chat_path)

    expect(page).to_have_url(re.compile(r"/login/\?next=" + re.escape(chat_path) + "$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.screenshot(path=tmp_path / "login.png")
    log_in(page, user.username)
    expect(page).to_have_url(re.compile(re.escape(chat_path) + "$"))
    expect(page.get_by_role("heading", name="Holiday plans")).to_be_visible()
    wait_until_connected(page)
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_be_focused()


def test_simulated_model_banner_visible_without_api_key(
    page: Page, user: User, tmp_path: Path
) -> None:
    page.goto("/login/")
    banner = page.locator("#simulated-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Answers come from the built-in simulator, not a real model.")
    expect(banner).to_contain_text("Set OPENAI_API_KEY to use one.")

    log_in(page, user.username)
    page.get_by_role("button", name="New chat").click()
    expect(page).to_have_url(DRAFT_URL)
    expect(page.locator("#simulated-banner")).to_be_visible()
    page.screenshot(path=tmp_path / "banner.png")


def test_reload_mid_answer_continues_without_gap_or_duplicate(
    page: Page, user: User, tmp_path: Path
) -> None:
    frames = received_frames(page)
    problems = script_problems(page)
    open_new_chat(page, user.username)
    send(page, f"Tell me a long story {SLOW_ANSWER}")

    shown = 0
    for _ in range(2):
        # Well over a second of answer between reloads: each snapshot resumes from a
        # checkpoint (STREAM_CHECKPOINT_SECONDS is 1) and the sync brings what came after it.
        wait_for_more_text(page, shown + 400)
        shown = len(bubble_text(streaming_answer(page)))
        page.reload()
        wait_until_connected(page)
        # Still streaming after the reload, and it goes on from where the page left off.
        expect(streaming_answer(page)).to_have_count(1)
        wait_for_more_text(page, shown)
    # A second tab joins mid-answer too, from a snapshot of its own.
    second = page.context.new_page()
    second_problems = script_problems(second)
    second.goto(page.url)
    wait_until_connected(second)
    expect(streaming_answer(second)).to_have_count(1)
    wait_for_more_text(second, 0)
    second.screenshot(path=tmp_path / "second-page-mid-answer.png")

    text = bubble_text(finished_answer(page, "complete"))
    assert bubble_text(finished_answer(second, "complete")) == text
    page.screenshot(path=tmp_path / "complete-after-reloads.png")
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.COMPLETE
    assert plain(answer.content) == text
    # The pages resumed from snapshots of a streaming answer, and what they assembled from
    # snapshot, sync and deltas was already the saved text when `done` came.
    resumed = [f for f in frames if f["type"] == "snapshot" and f["active"] is not None]
    assert len(resumed) == 3  # the new chat's own page, once saved; the reload; the second
    # (the first may come before the answer's first piece)
    assert all(f["active"]["seq"] > 0 and f["active"]["text"] for f in resumed[1:])
    assert problems == []
    assert second_problems == []


def test_socket_drop_and_unavailable_mid_answer_resume_without_gap(
    page: Page, user: User, tmp_path: Path
) -> None:
    problems = script_problems(page)
    # Every socket passes through here: normally straight to the server; one of them is
    # answered as a server without its channel layer would (an error frame, then 4503).
    routes: list[WebSocketRoute] = []
    unavailable = {"next": False}

    def route(ws: WebSocketRoute) -> None:
        if unavailable["next"]:
            unavailable["next"] = False
            ws.send(json.dumps({"type": "error", "code": "unavailable", "message": "Down."}))
            ws.close(code=4503)
            return
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r"/ws/conversations/"), route)
    open_new_chat(page, user.username)
    send(page, f"Tell me a long story {SLOW_ANSWER}")
    wait_for_more_text(page, 300)

    # The network drops; the first reconnect finds the layer down, the next one works.
    unavailable["next"] = True
    routes[-1].close()
    status = page.locator("#connection-status")
    expect(status).to_have_text("Live updates are unavailable — retrying…")
    expect(page.locator("#chat")).to_have_attribute("data-connection", "reconnecting")
    page.screenshot(path=tmp_path / "unavailable.png")
    wait_until_connected(page)
    expect(status).to_have_text("")
    assert len(routes) == 2

    text = bubble_text(finished_answer(page, "complete"))
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.COMPLETE
    assert plain(answer.content) == text
    assert problems == []


def test_stop_button_cancels_and_keeps_partial_text(page: Page, user: User, tmp_path: Path) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    send(page, f"Write at length {SLOW_ANSWER}")
    wait_for_more_text(page, 80)
    stop = page.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_visible()
    page.screenshot(path=tmp_path / "streaming-with-stop.png")

    stop.click()

    bubble = finished_answer(page, "cancelled")
    expect(bubble.locator(".message-status")).to_have_text("Stopped")
    expect(bubble.locator(".message-error")).to_have_count(0)
    expect(stop).to_be_hidden()
    expect(composer(page)).to_be_focused()
    expect(bubble.get_by_role("button", name="Retry")).to_be_visible()
    page.screenshot(path=tmp_path / "stopped.png")
    partial = bubble_text(bubble)
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.CANCELLED
    assert plain(answer.content) == partial
    assert 0 < len(partial.split()) < SLOW_ANSWER_TOKENS

    # Sending works again, and the stopped answer is no longer the last: no Retry on it.
    composer(page).fill("Thanks sim:tokens=5")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message--assistant")).to_have_count(2)
    finished_answer(page, "complete")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    assert problems == []


def test_escape_stops_the_answer(page: Page, user: User, tmp_path: Path) -> None:
    open_new_chat(page, user.username)
    send(page, f"Write at length {SLOW_ANSWER}")
    wait_for_more_text(page, 80)
    # Esc works from anywhere on the page, not only in the composer.
    page.locator("#chat-title").click()
    expect(composer(page)).not_to_be_focused()

    page.keyboard.press("Escape")

    bubble = finished_answer(page, "cancelled")
    expect(bubble.locator(".message-status")).to_have_text("Stopped")
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_hidden()
    page.screenshot(path=tmp_path / "escape-stopped.png")
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert answer.status == Message.Status.CANCELLED
    assert plain(answer.content) == bubble_text(bubble)
    assert len(answer.content.split()) < SLOW_ANSWER_TOKENS


def test_retry_after_failure_answers_again(page: Page, user: User, tmp_path: Path) -> None:
    problems = script_problems(page)
    open_new_chat(page, user.username)
    # The simulator counts `sim:times` per message text, for the whole session: make it unique.
    send(page, f"Hello {uuid.uuid4().hex} sim:status=400 sim:times=1 sim:tokens=8")
    failed = finished_answer(page, "error")
    failed_id = failed.get_attribute("data-message-id")
    failed = page.locator(f'[data-message-id="{failed_id}"]')
    expect(failed.locator(".message-error")).to_be_visible()
    retry = failed.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    page.screenshot(path=tmp_path / "failed-with-retry.png")

    retry.click()

    # The new answer is a second version in the failed one's place, not a bubble below it.
    answer = finished_answer(page, "complete")
    assert bubble_text(answer)
    expect(page.locator(".message--assistant")).to_have_count(1)
    expect(answer.locator(".message-version")).to_have_text("2 / 2")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    page.screenshot(path=tmp_path / "retried.png")
    saved = orm(lambda: list(Message.objects.filter(conversation__owner=user)))
    assert [(m.role, m.status) for m in saved] == [
        ("user", "complete"),
        ("assistant", "error"),
        ("assistant", "complete"),
    ]
    assert saved[1].parent_id == saved[2].parent_id == saved[0].id
    assert saved[1].content == ""
    assert plain(saved[2].content) == bubble_text(answer)

    # The failed one is still there, one click away, as it was.
    answer.get_by_role("button", name="Previous version").click()
    expect(failed.locator(".message-status")).to_have_text("Failed")
    expect(failed.locator(".message-version")).to_have_text("1 / 2")
    expect(page.locator(".message--assistant")).to_have_count(1)
    orm_until(lambda: Conversation.objects.get(owner=user).leaf_id == saved[1].id)

    page.reload()
    wait_until_connected(page)
    expect(page.locator(".message")).to_have_count(2)
    expect(failed.locator(".message-status")).to_have_text("Failed")
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    assert problems == []


def test_interrupted_answer_is_shown_with_retry(page: Page, user: User, tmp_path: Path) -> None:
    def interrupted_conversation() -> tuple[Conversation, Message]:
        conversation = Conversation.objects.create(owner=user, title="Cut short")
        asked = timezone.now() - timedelta(minutes=1)
        question = Message.objects.create(
            conversation=conversation,
            role=Message.Role.USER,
            content="Tell me about rivers sim:tokens=12",
            created_at=asked,
        )
        answer = Message.objects.create(
            conversation=conversation,
            parent=question,
            role=Message.Role.ASSISTANT,
            status=Message.Status.INTERRUPTED,
            content="Rivers begin as",
            error=INTERRUPTED_MESSAGE,
            created_at=asked + timedelta(seconds=1),
        )
        return conversation, answer

    conversation, interrupted = orm(interrupted_conversation)
    page.goto(f"/c/{conversation.id}/")
    log_in(page, user.username)
    wait_until_connected(page)

    bubble = page.locator(f'[data-message-id="{interrupted.id}"]')
    expect(bubble.locator(".message-content")).to_have_text("Rivers begin as")
    expect(bubble.locator(".message-status")).to_have_text("Interrupted")
    # The server's explanation, as a notice rather than an error.
    expect(bubble.locator(".message-notice")).to_have_text(INTERRUPTED_MESSAGE)
    expect(bubble.locator(".message-error")).to_have_count(0)
    retry = bubble.get_by_role("button", name="Retry")
    expect(retry).to_be_enabled()
    page.screenshot(path=tmp_path / "interrupted.png")

    retry.click()

    answer = finished_answer(page, "complete")
    expect(page.locator(".message--assistant")).to_have_count(1)
    expect(answer.locator(".message-version")).to_have_text("2 / 2")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    saved = orm(lambda: list(Message.objects.filter(conversation=conversation)))
    assert [(m.role, m.status) for m in saved] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("assistant", "complete"),
    ]
    assert saved[1].content == "Rivers begin as"
    assert plain(saved[2].content) == bubble_text(answer)
