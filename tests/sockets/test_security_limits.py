"""Per-user limits, bounded requests and secrets, tried as a hostile user would.

Real daphne processes on the test database and Redis, real WebSocket clients, the
simulator over real HTTP. Every refusal is checked for what it must not do: write a row, or
call the model.
"""

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone

from streaming.limits import KEY_PREFIX, SocketSlot
from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.frames import user_message
from tests.support.live import LiveClient, refused_connection
from tests.support.servers import DaphneServer, free_port
from tests.support.users import session_cookie, user_change_form
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

LONG = "sim:tokens=3000 sim:rate=20"


def answers_asked(simulator: SimulatorThread, marker: str) -> int:
    """How many requests reached the model whose last message carries ``marker``."""
    return sum(
        1
        for request in simulator.requests
        if marker in str((request.get("messages") or [{}])[-1].get("content", ""))
    )


async def new_conversations(owner: User, count: int) -> list[Conversation]:
    return [await Conversation.objects.acreate(owner=owner) for _ in range(count)]


async def refused(client: LiveClient, frame: dict[str, Any]) -> dict[str, Any]:
    """Send ``frame`` and return the `error` frame that refuses it."""
    await client.send(frame)
    error = await client.receive_until("error")
    assert error["code"] in {"rate_limited", "quota_exceeded"}, error
    return error


async def row_count(conversation: Conversation) -> int:
    return await Message.objects.filter(conversation=conversation).acount()


# --- answers at once, across processes ---------------------------------------------------


async def test_answers_at_once_are_limited_per_user_across_processes(
    live_servers: Callable[..., list[DaphneServer]],
    redis_url: str,
    simulator: SimulatorThread,
    user: User,
    other_user: User,
) -> None:
    a, b = live_servers(2, redis_url=redis_url)
    cookie = await sync_to_async(session_cookie)(user)
    convs = await new_conversations(user, 4)
    (theirs,) = await new_conversations(other_user, 1)
    marker = f"m{uuid.uuid4().hex[:8]}"
    async with (
        LiveClient(a, convs[0].id, cookie) as c0,
        LiveClient(a, convs[1].id, cookie) as c1,
        LiveClient(b, convs[2].id, cookie) as c2,
        LiveClient(b, convs[3].id, cookie) as c3,
    ):
        for client in (c0, c1, c2):
            await client.send(user_message(f"{marker} {LONG}"))
            await client.receive_until("delta")

        error = await refused(c3, user_message(f"{marker} fourth {LONG}"))

        assert error["code"] == "rate_limited"
        assert error["frame"] == "user_message"
        assert error["retry_after"] >= 1
        assert "limited to 3" in error["message"]
        assert await row_count(convs[3]) == 0
        assert answers_asked(simulator, f"{marker} fourth") == 0

        # Another user is not held up by this one.
        other_cookie = await sync_to_async(session_cookie)(other_user)
        async with LiveClient(a, theirs.id, other_cookie) as other:
            await other.send(user_message("mine sim:tokens=5 sim:rate=100"))
            done = await other.receive_until("done")
            assert done["status"] == "complete"

        # Stopping one makes room for the next, on the other process.
        await c0.send({"type": "stop"})
        await c0.receive_until("done")
        await c3.send(user_message(f"{marker} fourth again sim:tokens=5 sim:rate=100"))
        assert (await c3.receive_until("done"))["status"] == "complete"
        for client in (c1, c2):
            await client.send({"type": "stop"})
            await client.receive_until("done")


# --- messages a minute -------------------------------------------------------------------


async def test_messages_a_minute_are_limited_and_retries_count_too(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    user: User,
    conversation: Conversation,
) -> None:
    (server,) = live_servers(1, LIMIT_MESSAGES_PER_MINUTE="3")
    cookie = await sync_to_async(session_cookie)(user)
    marker = f"m{uuid.uuid4().hex[:8]}"
    async with LiveClient(server, conversation.id, cookie) as client:
        for n in range(3):
            await client.send(user_message(f"{marker} {n} sim:tokens=3 sim:rate=100"))
            done = await client.receive_until("done")
        rows = await row_count(conversation)

        error = await refused(client, user_message(f"{marker} over sim:tokens=3"))
        assert error["frame"] == "user_message"
        assert 1 <= error["retry_after"] <= 60
        assert "limited to 3 a minute" in error["message"]
        assert re.search(r"Try again in \d+ s\.", error["message"])

        error = await refused(client, {"type": "retry", "message_id": done["message_id"]})
        assert error["frame"] == "retry"

    assert await row_count(conversation) == rows == 6
    assert answers_asked(simulator, marker) == 3


# --- the day's tokens ----------------------------------------------------------------------


async def test_daily_token_budget_refuses_until_staff_raise_it_in_the_admin(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    user: User,
    conversation: Conversation,
    admin_client: Any,
) -> None:
    (server,) = live_servers(1, DAILY_TOKEN_BUDGET="20")
    cookie = await sync_to_async(session_cookie)(user)
    marker = f"m{uuid.uuid4().hex[:8]}"
    async with LiveClient(server, conversation.id, cookie) as client:
        await client.send(user_message(f"{marker} sim:tokens=30 sim:rate=400"))
        done = await client.receive_until("done")
        assert done["message"]["usage"]["total_tokens"] >= 20

        error = await refused(client, user_message(f"{marker} more"))
        assert error["code"] == "quota_exceeded"
        now = timezone.now()
        to_midnight = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
        assert abs((error["retry_after"] - to_midnight + 43200) % 86400 - 43200) <= 5
        assert "tokens for today" in error["message"]
        assert await row_count(conversation) == 2

        # Staff give this user a budget of their own in the admin: 0, no budget.
        form = user_change_form(user, daily_token_budget="0")
        response = await sync_to_async(admin_client.post)(
            f"/admin/auth/user/{user.pk}/change/", form
        )
        assert response.status_code == 302, response.content.decode()[:2000]

        await client.send(user_message(f"{marker} again sim:tokens=3 sim:rate=100"))
        assert (await client.receive_until("done"))["status"] == "complete"
    assert answers_asked(simulator, marker) == 2


async def test_an_answer_stopped_at_once_still_counts_its_prompt_against_the_budget(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    user: User,
) -> None:
    """A provider counts nothing for a stopped answer; the request's estimate counts then."""
    (server,) = live_servers(1, DAILY_TOKEN_BUDGET="500")
    conversation = await Conversation.objects.acreate(owner=user, system_prompt="p" * 2400)
    cookie = await sync_to_async(session_cookie)(user)
    async with LiveClient(server, conversation.id, cookie) as client:
        await client.send(user_message(f"stop me at once {LONG}"))
        await client.receive_until("start")
        await client.send({"type": "stop"})
        done = await client.receive_until("done")
        assert done["message"]["usage"] is None  # the provider reported nothing

        # ~600 estimated tokens of system prompt: over the budget of 500.
        error = await refused(client, user_message("and again"))
        assert error["code"] == "quota_exceeded"
    saved = await Message.objects.aget(pk=done["message_id"])
    assert saved.prompt_tokens is None
    assert saved.prompt_estimate is not None
    assert saved.prompt_estimate > 500


# --- sockets a user may hold open ----------------------------------------------------------


async def test_sockets_per_user_are_limited_across_processes_and_freed_on_close(
    live_servers: Callable[..., list[DaphneServer]],
    redis_url: str,
    user: User,
    conversation: Conversation,
) -> None:
    places = redis.Redis.from_url(redis_url)
    key = f"{KEY_PREFIX}{user.pk}"
    places.delete(key)  # an earlier test's user may have had the same id
    a, b = live_servers(2, redis_url=redis_url, LIMIT_SOCKETS_PER_USER="3")
    cookie = await sync_to_async(session_cookie)(user)
    async with LiveClient(a, conversation.id, cookie), LiveClient(a, conversation.id, cookie):
        async with LiveClient(b, conversation.id, cookie):
            frame, code = await refused_connection(b, conversation.id, cookie)
            assert frame["code"] == "rate_limited"
            assert "tabs are limited to 3" in frame["message"]
            assert code == 4429
            assert places.zcard(key) == 3  # the refused one took no place
        # One closed on b: a place is free again, on a.
        await until(lambda: places.zcard(key) == 2, what="the closed socket's place freed")
        async with LiveClient(a, conversation.id, cookie) as fourth:
            await fourth.ping()
            assert (await fourth.receive_until("pong"))["type"] == "pong"


async def test_places_taken_and_freed_by_hundreds_of_sockets_at_once_are_all_counted(
    redis_layer: str, redis_url: str, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # More at once than redis-py's pool holds connections (100): none may fail for want
    # of one, or places would stay taken until they expire.
    settings.LIMIT_SOCKETS_PER_USER = 1000
    user_id = 10**9 + uuid.uuid4().int % 10**6
    places = redis.Redis.from_url(redis_url)
    key = f"{KEY_PREFIX}{user_id}"
    slots = [SocketSlot(user_id, f"socket-{n}") for n in range(300)]
    try:
        await asyncio.gather(*(slot.take() for slot in slots))
        assert places.zcard(key) == 300
        await asyncio.gather(*(slot.release() for slot in slots))
        assert places.zcard(key) == 0
        assert "Could not free" not in caplog.text
    finally:
        places.delete(key)


# --- frames a second -----------------------------------------------------------------------


async def test_a_flood_of_frames_is_refused_and_the_socket_stays_usable(
    live_servers: Callable[..., list[DaphneServer]],
    user: User,
    conversation: Conversation,
) -> None:
    (server,) = live_servers(1)
    cookie = await sync_to_async(session_cookie)(user)
    async with LiveClient(server, conversation.id, cookie) as client:
        flood = 300
        for _ in range(flood):
            await client.send({"type": "ping"})
        answers: list[dict[str, Any]] = []
        while len(answers) < flood:
            frame = await client.receive()
            if frame["type"] in {"pong", "error"}:
                answers.append(frame)
        refusals = [f for f in answers if f["type"] == "error"]
        assert refusals, "a flood of 300 pings was served whole"
        assert {f["code"] for f in refusals} == {"rate_limited"}
        assert {f["frame"] for f in refusals} == {"ping"}
        assert len(refusals) > flood // 2

        # Frames that are not even valid count too: no parsing them for free.
        for _ in range(flood):
            await client.send({"type": "no-such-type"})
        codes = [(await client.receive_until("error"))["code"] for _ in range(flood)]
        assert "rate_limited" in codes
        assert set(codes) <= {"rate_limited", "unknown_type"}

        # Once it slows down, the same socket is served again.
        async def served() -> bool:
            await client.send(user_message("still here sim:tokens=3 sim:rate=100"))
            return bool((await client.receive())["type"] != "error")

        await until(served, what="a message served after the flood")
        assert (await client.receive_until("done"))["status"] == "complete"


# --- a full process ------------------------------------------------------------------------


async def test_a_full_process_refuses_at_once_instead_of_hanging(
    live_servers: Callable[..., list[DaphneServer]],
    simulator: SimulatorThread,
    user: User,
    other_user: User,
) -> None:
    (server,) = live_servers(1, STREAM_MAX_ANSWERS="1")
    (mine,) = await new_conversations(user, 1)
    (theirs,) = await new_conversations(other_user, 1)
    marker = f"m{uuid.uuid4().hex[:8]}"
    mine_cookie = await sync_to_async(session_cookie)(user)
    their_cookie = await sync_to_async(session_cookie)(other_user)
    async with (
        LiveClient(server, mine.id, mine_cookie) as first,
        LiveClient(server, theirs.id, their_cookie) as second,
    ):
        await first.send(user_message(f"{marker} {LONG}"))
        await first.receive_until("delta")
        error = await refused(second, user_message(f"{marker} second"))
        assert error["code"] == "rate_limited"
        assert "as many answers as it can (1 at once)" in error["message"]
        assert await row_count(theirs) == 0
        assert answers_asked(simulator, f"{marker} second") == 0
        await first.send({"type": "stop"})
        await first.receive_until("done")


# --- bounded requests ----------------------------------------------------------------------


async def test_a_long_system_prompt_is_refused_by_the_form_and_nothing_is_saved(
    live_servers: Callable[..., list[DaphneServer]], user: User
) -> None:
    (server,) = live_servers(1, MAX_SYSTEM_PROMPT_CHARS="100")
    cookie = await sync_to_async(session_cookie)(user)
    async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as http:
        # The list page's form opens a draft with the prompt; a long one is refused there.
        too_long = await http.get("/c/new/", params={"system_prompt": "x" * 101})
        assert too_long.status_code == 400
        assert "at most 100 characters long (it has 101)" in too_long.text
        draft = await http.get("/c/new/", params={"system_prompt": "y" * 100})
        assert draft.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', draft.text)
        assert token is not None
        headers = {"Referer": f"{server.url}/c/new/", "X-CSRFToken": token[1]}
        # And the first message, which carries it, is refused with a longer one.
        refused = await http.post(
            "/c/new/",
            data={"content": "Hi", "client_id": str(uuid.uuid4()), "system_prompt": "x" * 101},
            headers=headers,
        )
        assert refused.status_code == 400
        assert refused.json()["code"] == "system_prompt_too_long"
        assert await Conversation.objects.filter(owner=user).acount() == 0

        just_fits = await http.post(
            "/c/new/",
            data={
                "content": "Hi sim:tokens=2",
                "client_id": str(uuid.uuid4()),
                "system_prompt": "y" * 100,
            },
            headers=headers,
        )
        assert just_fits.status_code == 201
    saved = await Conversation.objects.aget(owner=user)
    assert saved.system_prompt == "y" * 100


async def test_history_sent_upstream_is_trimmed_to_the_context_budget(
    live_servers: Callable[..., list[DaphneServer]], simulator: SimulatorThread, user: User
) -> None:
    (server,) = live_servers(1, OPENAI_CONTEXT_TOKENS="350")
    conversation = await Conversation.objects.acreate(owner=user, system_prompt="Be brief.")
    start = timezone.now() - timedelta(hours=1)
    parent = None
    for n in range(10):  # 10 turns of ~100 estimated tokens each, one after the other
        parent = await Message.objects.acreate(
            conversation=conversation,
            parent=parent,
            role="user" if n % 2 == 0 else "assistant",
            content=f"turn {n} " + "w" * 400,
            created_at=start + timedelta(seconds=n),
        )
    marker = f"m{uuid.uuid4().hex[:8]}"
    cookie = await sync_to_async(session_cookie)(user)
    async with LiveClient(server, conversation.id, cookie) as client:
        await client.send(user_message(f"{marker} newest sim:tokens=3 sim:rate=100"))
        await client.receive_until("done")

    (request,) = [r for r in simulator.requests if marker in str(r["messages"][-1]["content"])]
    sent = request["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[-1]["content"].startswith(f"{marker} newest")
    # Turns 7 to 9 fit, but 7 is an answer, and what is sent never starts with one.
    kept = [m["content"].split()[1] for m in sent[1:-1]]
    assert kept == ["8", "9"]
    assert sent[1]["role"] == "user"
    assert sum(len(m["content"]) for m in sent) // 4 <= 300


# --- secrets -------------------------------------------------------------------------------


async def test_credentials_in_the_base_url_reach_no_user_and_no_log(
    live_servers: Callable[..., list[DaphneServer]], user: User, conversation: Conversation
) -> None:
    address = f"127.0.0.1:{free_port()}"
    (server,) = live_servers(
        1, OPENAI_BASE_URL=f"http://apikey:S3CRET-pass@{address}/v1", OPENAI_MAX_RETRIES="0"
    )
    cookie = await sync_to_async(session_cookie)(user)
    async with LiveClient(server, conversation.id, cookie) as client:
        await client.send(user_message("anyone there?"))
        done = await client.receive_until("done")

    saved = await Message.objects.aget(pk=done["message_id"])
    assert saved.status == done["status"] == "error"
    assert saved.error == done["error"] == "Could not connect to the model API."
    everything = json.dumps(client.frames) + saved.error + server.log()
    assert "S3CRET" not in everything
    assert address not in json.dumps(client.frames)
    assert f"http://{address}/v1" in server.log()  # whoever runs it learns where


async def test_a_key_the_provider_echoes_as_its_model_is_never_stored_or_shown(
    live_servers: Callable[..., list[DaphneServer]], user: User, conversation: Conversation
) -> None:
    key = f"sk-test-{uuid.uuid4().hex}"
    (server,) = live_servers(1, OPENAI_API_KEY=key)
    cookie = await sync_to_async(session_cookie)(user)
    async with LiveClient(server, conversation.id, cookie) as client:
        await client.send(user_message("hi sim:echokey=1 sim:tokens=3 sim:rate=100"))
        ok = await client.receive_until("done")
        await client.send(user_message("again sim:echokey=1 sim:status=404"))
        failed = await client.receive_until("done")

    assert ok["status"] == "complete"
    assert failed["status"] == "error"
    assert "[redacted]" in ok["message"]["model"]
    assert "[redacted]" in failed["error"]
    rows = [m async for m in Message.objects.filter(conversation=conversation)]
    stored = json.dumps([[m.model, m.error, m.finish_reason, m.content] for m in rows])
    assert key not in stored
    assert key not in json.dumps(client.frames)
    assert key not in server.log()
