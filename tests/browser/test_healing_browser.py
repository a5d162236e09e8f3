"""Every lost, doubled or late frame heals in a real browser, without a reload.

A real daphne process whose channel layer drops, repeats or holds back chosen messages
(tests/support/faults.py), the simulator answering, Debian's Chromium on the chat page. Each test
ends with the page showing exactly the saved answer, with its saved status, the composer
usable, on the page's first socket: healed by `seq`/`sync`, `done`'s `seq`, or a `resync`.
"""

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from streaming.models import Conversation, Message
from tests.support.browser import (
    Chat,
    OpenChat,
    Sockets,
    bubble_text,
    composer,
    finished_answer,
    orm,
    plain,
    send,
    wait_for_more_text,
    wait_until_connected,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Long enough for many delta frames (one per piece the model sends), short enough to wait for.
STREAMED = "sim:tokens=80 sim:rate=80"


def saved_answer(user: User) -> Message:
    return orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))


def assert_healed_in_place(chat: Chat, tmp_path: Path, name: str) -> None:
    """Nothing reloaded, no socket replaced, no script error or mismatch, composer usable."""
    page = chat.page
    chat.page.screenshot(path=tmp_path / f"{name}.png")
    assert page.evaluate("window.healingTestMark") is True
    assert len(chat.sockets.opened) == 1
    assert chat.problems == []
    expect(composer(page)).to_be_enabled()
    composer(page).fill("And then?")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def assert_shows_saved_answer(chat: Chat, user: User, status: str = "complete") -> Message:
    """Wait for the answer to end on the page; it shows exactly the saved text and status."""
    bubble = finished_answer(chat.page, status)
    answer = saved_answer(user)
    assert answer.status == status
    expect(bubble.locator(".message-content")).to_have_text(answer.content)
    assert bubble_text(bubble) == plain(answer.content)
    assert answer.content
    return answer


def test_lost_user_message_echo_heals_by_resync(
    open_chat: OpenChat, user: User, tmp_path: Path
) -> None:
    chat = open_chat([{"type": "chat.message", "action": "drop"}])
    page = chat.page
    prompt = "Name the rivers of Europe sim:tokens=20"

    send(page, prompt)

    # The echo never comes: the page's watchdog asks for a snapshot, which shows the
    # message saved (so it is confirmed, not sent twice) and names the conversation.
    user_bubble = page.locator(".message--user")
    expect(user_bubble).to_have_attribute("data-status", "complete")
    expect(user_bubble).to_have_count(1)
    expect(page.locator("#chat-title")).to_have_text(prompt)
    expect(page.locator('.sidebar-list a[aria-current="page"]')).to_have_text(prompt)
    assert_shows_saved_answer(chat, user)
    assert "resync" in chat.sockets.sent_types()
    assert len(chat.sockets.received_of("snapshot")) >= 2
    saved = orm(lambda: list(Message.objects.filter(conversation__owner=user, role="user")))
    assert [m.content for m in saved] == [prompt]
    assert orm(lambda: Conversation.objects.get(owner=user).title) == prompt
    assert_healed_in_place(chat, tmp_path, "lost-message")


def test_lost_start_heals_by_resync(open_chat: OpenChat, user: User, tmp_path: Path) -> None:
    chat = open_chat([{"type": "chat.start", "action": "drop"}])
    page = chat.page

    send(page, f"Describe a lighthouse {STREAMED}")

    # Deltas for an answer the page never heard start: it asks for a snapshot, once rather
    # than for every such delta, and follows the answer from there.
    assert_shows_saved_answer(chat, user)
    assert chat.sockets.sent_types().count("resync") == 1
    assert_healed_in_place(chat, tmp_path, "lost-start")


def test_lost_deltas_heal_by_sync(open_chat: OpenChat, user: User, tmp_path: Path) -> None:
    chat = open_chat([{"type": "chat.delta", "action": "drop", "skip": 2, "times": 3}])

    send(chat.page, f"Describe a harbour {STREAMED}")

    assert_shows_saved_answer(chat, user)
    # The first delta after the lost ones showed the gap; the sync reply filled it.
    syncs = [f for f in chat.sockets.sent if f["type"] == "sync"]
    assert syncs[0]["after_seq"] == 2
    assert any(f["after_seq"] == 2 for f in chat.sockets.received_of("sync"))
    assert_healed_in_place(chat, tmp_path, "lost-deltas")


def test_lost_tail_heals_by_done_seq(open_chat: OpenChat, user: User, tmp_path: Path) -> None:
    # Every delta after the second is lost, so no later delta ever shows a gap.
    chat = open_chat([{"type": "chat.delta", "action": "drop", "skip": 2, "times": 0}])

    send(chat.page, "Describe a bridge sim:tokens=40 sim:rate=100")

    assert_shows_saved_answer(chat, user)
    (done,) = chat.sockets.received_of("done")
    last_delta = max(f["seq"] for f in chat.sockets.received_of("delta"))
    assert last_delta == 2
    assert done["seq"] > last_delta  # the saved text holds the tail the page never got
    assert_healed_in_place(chat, tmp_path, "lost-tail")


def test_lost_done_heals(open_chat: OpenChat, user: User, tmp_path: Path) -> None:
    chat = open_chat([{"type": "chat.done", "action": "drop"}])

    send(chat.page, "Describe a canal sim:tokens=20")

    # Nothing more comes: the page asks about the quiet answer (sync, or ping and pong)
    # and the server answers with the saved ending.
    assert_shows_saved_answer(chat, user)
    sent = chat.sockets.sent_types()
    assert "sync" in sent or "resync" in sent
    assert_healed_in_place(chat, tmp_path, "lost-done")


def test_lost_done_of_a_stop_heals(open_chat: OpenChat, user: User, tmp_path: Path) -> None:
    chat = open_chat([{"type": "chat.done", "action": "drop"}])
    page = chat.page
    send(page, "Write at length sim:tokens=400 sim:rate=40")
    wait_for_more_text(page, 40)

    page.get_by_role("button", name="Stop", exact=True).click()

    # The stop's `done` is lost: the watchdog asks for a snapshot, which shows it stopped,
    # so the page does not stay "Stopping…".
    assert_shows_saved_answer(chat, user, "cancelled")
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_hidden()
    assert "resync" in chat.sockets.sent_types()
    assert_healed_in_place(chat, tmp_path, "lost-done-of-stop")


def test_duplicated_deltas_are_applied_once(
    open_chat: OpenChat, user: User, tmp_path: Path
) -> None:
    chat = open_chat([{"type": "chat.delta", "action": "duplicate", "times": 0}])

    send(chat.page, f"Describe a river {STREAMED}")

    assert_shows_saved_answer(chat, user)
    seqs = [f["seq"] for f in chat.sockets.received_of("delta")]
    assert len(seqs) > len(set(seqs))  # the page did receive every delta twice
    assert "sync" not in chat.sockets.sent_types()
    assert_healed_in_place(chat, tmp_path, "duplicated-deltas")


def test_delayed_delta_is_not_applied_out_of_order(
    open_chat: OpenChat, user: User, tmp_path: Path
) -> None:
    chat = open_chat(
        [{"type": "chat.delta", "action": "delay", "skip": 2, "times": 1, "seconds": 0.5}]
    )

    send(chat.page, f"Describe a waterfall {STREAMED}")

    assert_shows_saved_answer(chat, user)
    seqs = [f["seq"] for f in chat.sockets.received_of("delta")]
    assert seqs != sorted(seqs)  # delta 3 really came after later ones
    assert any(f["type"] == "sync" and f["after_seq"] == 2 for f in chat.sockets.sent)
    assert_healed_in_place(chat, tmp_path, "delayed-delta")


def test_deleted_conversation_says_so_and_stops(
    open_chat: OpenChat, user: User, tmp_path: Path
) -> None:
    chat = open_chat([])
    page = chat.page
    send(page, "Hello sim:tokens=5")
    finished_answer(page, "complete")

    # Deleted from another tab.
    other = page.context.new_page()
    other.goto(page.url)
    other.once("dialog", lambda dialog: dialog.accept())
    other.get_by_role("button", name="Delete").click()
    expect(other.get_by_role("heading", name="Conversations")).to_be_visible()

    expect(page.locator("#connection-status")).to_have_text("This conversation was deleted.")
    expect(page.locator("#chat")).to_have_attribute("data-connection", "closed")
    expect(composer(page)).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    (socket,) = chat.sockets.opened
    if not socket.is_closed():
        socket.wait_for_event("close")
    page.screenshot(path=tmp_path / "deleted.png")
    assert chat.sockets.received_of("deleted") == [
        {"type": "deleted", "message": "This conversation was deleted."}
    ]
    assert page.evaluate("window.healingTestMark") is True
    assert chat.problems == []


def test_lost_branch_heals_in_the_other_tab_by_pong(
    open_chat: OpenChat, user: User, tmp_path: Path
) -> None:
    chat = open_chat([{"type": "chat.branch", "action": "drop", "times": 0}])
    page = chat.page
    send(page, "Hello sim:tokens=5")
    first = finished_answer(page, "complete")
    first_id = str(first.get_attribute("data-message-id"))
    first.hover()
    first.get_by_role("button", name="Regenerate this answer").click()
    expect(page.locator(".message-version")).to_have_text("2 / 2")
    finished_answer(page, "complete")
    other = page.context.new_page()
    other_sockets = Sockets()
    other.on("websocket", other_sockets.watch)
    other.goto(page.url)
    wait_until_connected(other)
    expect(other.locator(".message-version")).to_have_text("2 / 2")

    page.get_by_role("button", name="Previous version").click()

    # The tab that switched shows it at once; the other never hears `branch`, but its
    # idle `ping` finds the end of the branch changed, and a snapshot shows the right one.
    expect(page.locator(".message-version")).to_have_text("1 / 2")
    expect(other.locator(".message-version")).to_have_text("1 / 2")
    expect(other.locator(".message--assistant")).to_have_attribute("data-message-id", first_id)
    assert other_sockets.received_of("branch") == []
    assert "resync" in other_sockets.sent_types()
    assert len(other_sockets.opened) == 1
    other.screenshot(path=tmp_path / "lost-branch.png")
    assert chat.problems == []
