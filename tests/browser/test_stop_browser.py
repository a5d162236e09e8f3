"""Stop from the moment of Send, in Chromium: Escape or Stop pressed right after Enter,
before the answer's first frame (docs/protocol.md, "Stop from the moment of Send").

The model is slow to start (its first token after 5 s), so every stop here comes before
the answer's first piece: the answer must end `cancelled`, with no text, and no `delta`
must reach the page.
"""

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, Route, WebSocketRoute, expect

from streaming.models import Message
from streaming.simulator import SimulatorThread
from tests.support.browser import (
    CHAT_URL,
    Sockets,
    bubble_text,
    finished_answer,
    open_new_chat,
    open_saved_chat,
    orm,
    script_problems,
    send,
)
from tests.support.frames import SLOW_TO_START

pytestmark = pytest.mark.django_db(transaction=True)


def watch_sockets(page: Page) -> Sockets:
    sockets = Sockets()
    page.on("websocket", sockets.watch)
    return sockets


def stopped_unsent(page: Page, user: User, sockets: Sockets) -> Message:
    """The page's answer, ended `cancelled` with no text and no piece sent: its saved row."""
    bubble = finished_answer(page, "cancelled")
    expect(bubble.locator(".message-status")).to_have_text("Stopped")
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_hidden()
    assert bubble_text(bubble) == ""
    assert sockets.received_of("delta") == []
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert (answer.status, answer.content, answer.seq) == ("cancelled", "", 0)
    return answer


def asked(simulator: SimulatorThread, marker: str) -> list[dict[str, Any]]:
    return [r for r in simulator.requests if marker in str(r["messages"])]


def test_escape_right_after_enter_stops_the_answer_before_its_first_piece(
    page: Page, user: User, tmp_path: Path
) -> None:
    problems = script_problems(page)
    sockets = watch_sockets(page)
    open_saved_chat(page, user)

    send(page, f"Slow to start {SLOW_TO_START}")
    page.keyboard.press("Escape")

    expect(page.get_by_role("button", name="Stopping…")).to_be_visible()
    page.screenshot(path=tmp_path / "stopping-before-the-answer.png")
    stopped_unsent(page, user, sockets)
    page.screenshot(path=tmp_path / "stopped-before-the-answer.png")
    message = next(f for f in sockets.sent if f["type"] == "user_message")
    stop = next(f for f in sockets.sent if f["type"] == "stop")
    # Named by what was sent: the page knew no answer yet.
    assert stop == {"type": "stop", "client_id": message["client_id"]}
    assert sockets.sent_types().count("stop") == 1
    assert problems == []


def test_stop_while_a_new_chats_first_message_is_posted_stops_its_answer(
    page: Page, user: User, tmp_path: Path
) -> None:
    problems = script_problems(page)
    sockets = watch_sockets(page)
    open_new_chat(page, user.username)
    # The first message's POST is held until Stop was pressed: no conversation, no socket yet.
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(re.compile(r"/c/new/$"), hold)

    send(page, f"Slow to start {SLOW_TO_START}")
    stop = page.get_by_role("button", name="Stop", exact=True)
    stop.click()
    expect(page.get_by_role("button", name="Stopping…")).to_be_disabled()
    assert len(held) == 1
    assert sockets.opened == []
    held[0].continue_()

    expect(page).to_have_url(CHAT_URL)
    stopped_unsent(page, user, sockets)
    # The stop went as soon as the conversation's socket had its snapshot.
    assert sockets.sent_types()[0] == "stop"
    page.screenshot(path=tmp_path / "new-chat-stopped.png")
    assert problems == []


def test_stop_asked_while_reconnecting_goes_first_and_the_model_is_not_asked(
    page: Page, user: User, simulator: SimulatorThread, tmp_path: Path
) -> None:
    problems = script_problems(page)
    # Every socket goes through here, its frames logged both ways; one is held back a while.
    routes: list[WebSocketRoute] = []
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []
    hold = {"next": False}

    def relay(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            sent.append(json.loads(message))
            upstream.send(message)

        def to_page(message: str | bytes) -> None:
            received.append(json.loads(message))
            ws.send(message)

        ws.on_message(to_server)
        upstream.on_message(to_page)

    def route(ws: WebSocketRoute) -> None:
        routes.append(ws)
        if hold["next"]:
            hold["next"] = False
        else:
            relay(ws)

    page.route_web_socket(re.compile(r"/ws/conversations/"), route)
    open_saved_chat(page, user)
    hold["next"] = True
    routes[-1].close()
    expect(page.locator("#chat")).to_have_attribute("data-connection", "reconnecting")

    marker = f"m{uuid.uuid4().hex[:8]}"
    send(page, f"{marker} {SLOW_TO_START}")
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Stopping…")).to_be_visible()
    page.screenshot(path=tmp_path / "stopped-while-reconnecting.png")
    while len(routes) < 2:  # the page's next socket, held by the route
        page.wait_for_timeout(20)
    first_of_new = len(sent)
    relay(routes[-1])

    bubble = finished_answer(page, "cancelled")
    assert bubble_text(bubble) == ""
    assert [f for f in received if f["type"] == "delta"] == []
    answer = orm(lambda: Message.objects.get(conversation__owner=user, role="assistant"))
    assert (answer.status, answer.content, answer.prompt_estimate) == ("cancelled", "", None)
    # On the new socket: the stop first, for a message not saved yet, then the message.
    frames = [(f["type"], f.get("client_id")) for f in sent[first_of_new:]]
    message = next(f for f in sent if f["type"] == "user_message")
    assert frames[:2] == [("stop", message["client_id"]), ("user_message", message["client_id"])]
    assert asked(simulator, marker) == []  # saved stopped: the model was never asked
    assert problems == []
