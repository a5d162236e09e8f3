"""Sessions that end: an open socket lives only as long as the login session that opened it.

Two real daphne processes share Redis and the database; people log in, out and change
passwords through the real views over HTTP, a staff member deactivates and deletes users
through the real admin forms, and real WebSocket clients sit on both processes while an
answer streams. Every socket of an ended session gets an `error` frame (`session_ended`) as
its last frame and is closed with 4401; its session cannot open a new one; the answer goes
on and is saved. The check itself (`check_session`) is tested on the real database too.
"""

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from websockets.exceptions import ConnectionClosed

from streaming.models import Conversation, Message
from streaming.sessions import check_session
from streaming.simulator import SimulatorThread
from tests.support.frames import user_message
from tests.support.live import LiveClient
from tests.support.servers import DaphneServer
from tests.support.users import PASSWORD, user_change_form
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

# About 10 s of answer: it is still streaming when the session ends.
SLOW_ANSWER = "sim:tokens=400 sim:rate=40"
NEW_PASSWORD = "a different horse, stapled"
CLOSE_UNAUTHENTICATED = 4401


class Browser:
    """One browser's cookie jar against a live server, using the site's real forms."""

    def __init__(self, server: DaphneServer) -> None:
        self.http = httpx.AsyncClient(base_url=server.url, timeout=15, trust_env=False)

    @property
    def session(self) -> str:
        """The session cookie this browser holds now."""
        return str(self.http.cookies[django_settings.SESSION_COOKIE_NAME])

    async def post(self, path: str, data: dict[str, Any]) -> httpx.Response:
        """Submit a form as the page would, with this browser's CSRF token."""
        if "csrftoken" not in self.http.cookies:
            await self.http.get("/login/")
        token = self.http.cookies["csrftoken"]
        return await self.http.post(path, data={"csrfmiddlewaretoken": token, **data})

    async def log_in(self, username: str, password: str = PASSWORD) -> None:
        response = await self.post("/login/", {"username": username, "password": password})
        assert response.status_code == 302, response.text

    async def log_out(self) -> None:
        response = await self.post("/logout/", {})
        assert response.status_code == 302, response.text

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class Site:
    """Two daphne processes on one Redis and one database, and browsers signed in to them."""

    a: DaphneServer
    b: DaphneServer
    browsers: list[Browser] = field(default_factory=list)

    async def sign_in(self, username: str, through: DaphneServer) -> Browser:
        """A new browser, signed in as ``username`` with ``through``'s login form."""
        browser = Browser(through)
        self.browsers.append(browser)
        await browser.log_in(username)
        return browser


@pytest.fixture
async def site(
    live_servers: Callable[..., list[DaphneServer]], redis_url: str
) -> AsyncIterator[Site]:
    a, b = live_servers(2, redis_url=redis_url)
    site = Site(a, b)
    yield site
    for browser in site.browsers:
        await browser.aclose()


@pytest.fixture
def admin(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_superuser("root", password=PASSWORD)


async def ended(client: LiveClient) -> dict[str, Any]:
    """Read until the server closes the socket; it must end with session_ended and 4401."""
    with pytest.raises(ConnectionClosed):
        await read_to_the_end(client)
    assert client.close_code == CLOSE_UNAUTHENTICATED
    last = client.frames[-1]  # nothing more was relayed after it
    assert last["type"] == "error"
    assert last["code"] == "session_ended"
    assert "Sign in again" in last["message"] or "deactivated" in last["message"]
    return last


async def read_to_the_end(client: LiveClient) -> None:
    """Receive frames until the socket closes (ConnectionClosed), or 15 s pass without one."""
    while True:
        await client.receive(timeout=15)


async def refused(server: DaphneServer, conversation_id: Any, cookie: str) -> int | None:
    """The close code a new socket with ``cookie`` gets (it must not get a snapshot)."""
    client = LiveClient(server, conversation_id, cookie)
    with pytest.raises(ConnectionClosed):
        async with client:
            pass
    return client.close_code


async def still_served(client: LiveClient) -> None:
    """The socket still answers: a ping gets its pong."""
    await client.ping()
    assert (await client.receive_until("pong"))["type"] == "pong"


async def start_long_answer(sender: LiveClient, *others: LiveClient) -> str:
    """Start a 10 s answer from ``sender``; its id, once every client has seen it stream."""
    await sender.send(user_message(f"a long one {SLOW_ANSWER}"))
    start = await sender.receive_until("start")
    for client in (sender, *others):
        await client.receive_until("delta")
    return str(start["message_id"])


async def saved_answer(message_id: str) -> Message:
    """The answer, once it is saved complete: it outlives every socket."""
    complete = Message.objects.filter(pk=message_id, status=Message.Status.COMPLETE)
    await until(complete.aexists, timeout=30, what="the answer to be saved complete")
    return await Message.objects.aget(pk=message_id)


# --- logout ------------------------------------------------------------------------------


async def test_logout_closes_that_sessions_sockets_on_every_process_and_no_others(
    site: Site,
    user: User,
    conversation: Conversation,
) -> None:
    a, b = site.a, site.b
    leaving = await site.sign_in(user.username, through=a)
    leaving_cookie = leaving.session
    staying_cookie = (await site.sign_in(user.username, through=b)).session
    async with (
        LiveClient(a, conversation.id, leaving_cookie) as leaving_on_a,
        LiveClient(b, conversation.id, leaving_cookie) as leaving_on_b,
        LiveClient(b, conversation.id, staying_cookie) as staying_on_b,
    ):
        answer_id = await start_long_answer(leaving_on_a, leaving_on_b, staying_on_b)

        await leaving.log_out()

        for client in (leaving_on_a, leaving_on_b):
            assert (await ended(client))["reason"] == "signed_out"
        # The other session of the same user is untouched, mid-answer and after.
        done = await staying_on_b.receive_until("done", timeout=30)
        await still_served(staying_on_b)

    assert done["message_id"] == answer_id
    saved = await saved_answer(answer_id)
    assert saved.content == staying_on_b.text_of(answer_id)
    assert await refused(a, conversation.id, leaving_cookie) == CLOSE_UNAUTHENTICATED
    assert await refused(b, conversation.id, leaving_cookie) == CLOSE_UNAUTHENTICATED


# --- password change ---------------------------------------------------------------------


async def test_password_change_closes_the_other_sessions_sockets_and_keeps_the_changer_in(
    site: Site,
    user: User,
    conversation: Conversation,
) -> None:
    a, b = site.a, site.b
    changer = await site.sign_in(user.username, through=a)
    other = await site.sign_in(user.username, through=b)
    changer_cookie, other_cookie = changer.session, other.session
    async with (
        LiveClient(a, conversation.id, changer_cookie) as changer_on_a,
        LiveClient(a, conversation.id, other_cookie) as other_on_a,
        LiveClient(b, conversation.id, other_cookie) as other_on_b,
    ):
        answer_id = await start_long_answer(changer_on_a, other_on_a, other_on_b)

        response = await changer.post(
            "/password/",
            {
                "old_password": PASSWORD,
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
            },
        )
        assert response.status_code == 302, response.text
        assert response.headers["location"] == "/password/done/"

        for client in (other_on_a, other_on_b):
            assert (await ended(client))["reason"] == "password_changed"
        # Django keeps the changer signed in under a new session key (update_session_auth_hash
        # cycles it), so the socket opened with the old key ends too; the page reconnects
        # with the browser's new cookie and goes on.
        await ended(changer_on_a)
        assert changer.session != changer_cookie
        async with LiveClient(b, conversation.id, changer.session) as changer_again:
            done = await changer_again.receive_until("done", timeout=30)

    assert done["message_id"] == answer_id
    saved = await saved_answer(answer_id)
    assert saved.content == done["message"]["content"]
    for cookie in (changer_cookie, other_cookie):
        assert await refused(b, conversation.id, cookie) == CLOSE_UNAUTHENTICATED
    # The other browser's session is over on the site too, not only on its sockets.
    assert (await other.http.get("/")).status_code == 302


# --- the admin: deactivating and deleting a user -------------------------------------------


async def test_deactivating_a_user_in_the_admin_closes_all_their_sockets(
    site: Site,
    user: User,
    admin: User,
    conversation: Conversation,
) -> None:
    a, b = site.a, site.b
    first_cookie = (await site.sign_in(user.username, through=a)).session
    second_cookie = (await site.sign_in(user.username, through=b)).session
    staff = await site.sign_in(admin.username, through=b)
    staff_conversation = await Conversation.objects.acreate(owner=admin)
    async with (
        LiveClient(a, conversation.id, first_cookie) as first_on_a,
        LiveClient(b, conversation.id, second_cookie) as second_on_b,
        LiveClient(a, staff_conversation.id, staff.session) as staff_on_a,
    ):
        answer_id = await start_long_answer(first_on_a, second_on_b)

        response = await staff.post(
            f"/admin/auth/user/{user.pk}/change/", user_change_form(user, is_active=None)
        )
        assert response.status_code == 302, response.text

        for client in (first_on_a, second_on_b):
            assert (await ended(client))["reason"] == "account_closed"
        await still_served(staff_on_a)  # someone else's socket is untouched

    assert not (await User.objects.aget(pk=user.pk)).is_active
    # The answer was not the session's: it runs to its end and is saved.
    await saved_answer(answer_id)
    for cookie in (first_cookie, second_cookie):
        assert await refused(a, conversation.id, cookie) == CLOSE_UNAUTHENTICATED


async def test_deleting_a_user_in_the_admin_closes_all_their_sockets(
    site: Site,
    user: User,
    admin: User,
    conversation: Conversation,
) -> None:
    a, b = site.a, site.b
    cookie = (await site.sign_in(user.username, through=a)).session
    staff = await site.sign_in(admin.username, through=b)
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        answer_id = await start_long_answer(on_a, on_b)

        response = await staff.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302, response.text

        for client in (on_a, on_b):
            assert (await ended(client))["reason"] == "account_closed"

    assert not await User.objects.filter(pk=user.pk).aexists()
    # Its conversations went with it, so the answer has nothing left to be saved in.
    assert not await Message.objects.filter(pk=answer_id).aexists()
    assert await refused(b, conversation.id, cookie) == CLOSE_UNAUTHENTICATED


# --- endings nobody announces ---------------------------------------------------------------


async def expire(cookie: str, after: timedelta = timedelta(0)) -> None:
    """Make the session expire ``after`` from now, in the database only: no signal says so."""
    updated = await Session.objects.filter(pk=cookie).aupdate(expire_date=timezone.now() + after)
    assert updated == 1


async def test_a_frame_on_an_expired_session_is_refused_and_does_nothing(
    site: Site,
    user: User,
    conversation: Conversation,
    simulator: SimulatorThread,
) -> None:
    a = site.a
    cookie = (await site.sign_in(user.username, through=a)).session
    content = f"never sent {uuid.uuid4()}"
    async with LiveClient(a, conversation.id, cookie) as client:
        await expire(cookie)
        await client.send(user_message(content))
        error = await ended(client)

    assert error["reason"] == "signed_out"
    assert [f["type"] for f in client.frames] == ["snapshot", "error"]
    assert not await Message.objects.filter(conversation=conversation).aexists()
    assert all(r["messages"][-1]["content"] != content for r in simulator.requests)
    assert await refused(a, conversation.id, cookie) == CLOSE_UNAUTHENTICATED


async def test_a_silent_socket_closes_when_its_session_expires(
    site: Site,
    user: User,
    conversation: Conversation,
) -> None:
    a, b = site.a, site.b
    cookie = (await site.sign_in(user.username, through=a)).session
    # Expiring in a few seconds; the sockets learn when as they connect, and check then,
    # long before their periodic check (SOCKET_SESSION_CHECK_SECONDS, 60 s here).
    await expire(cookie, after=timedelta(seconds=3))
    async with (
        LiveClient(a, conversation.id, cookie) as on_a,
        LiveClient(b, conversation.id, cookie) as on_b,
    ):
        # Neither sends a frame: only the server's own timer can close them.
        for client in (on_a, on_b):
            assert (await ended(client))["reason"] == "signed_out"

    assert timezone.now() >= (await Session.objects.aget(pk=cookie)).expire_date
    assert await refused(a, conversation.id, cookie) == CLOSE_UNAUTHENTICATED


async def test_a_silent_socket_notices_an_unannounced_deactivation_within_the_check_interval(
    live_servers: Callable[..., list[DaphneServer]],
    redis_url: str,
    user: User,
    conversation: Conversation,
) -> None:
    (server,) = live_servers(1, redis_url=redis_url, SOCKET_SESSION_CHECK_SECONDS="1")
    browser = Browser(server)
    try:
        await browser.log_in(user.username)
    finally:
        await browser.aclose()
    cookie = browser.session
    async with LiveClient(server, conversation.id, cookie) as client:
        # A bulk update sends no signal: no socket is told.
        await User.objects.filter(pk=user.pk).aupdate(is_active=False)
        assert (await ended(client))["reason"] == "account_closed"


# --- a layer that fails does not fail the logout or the save --------------------------------


@pytest.fixture
def dead_layer(settings: Any) -> None:
    """A channels-redis layer whose Redis does not exist (nothing listens on port 9)."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]},
        }
    }


@pytest.mark.usefixtures("dead_layer")
def test_logout_and_user_save_succeed_when_the_layer_is_down(
    user: User, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client()
    client.force_login(user)
    session_key = client.session.session_key

    response = client.post("/logout/")
    user.is_active = False
    user.save()

    assert response.status_code == 302
    assert not Session.objects.filter(pk=session_key).exists()
    assert not User.objects.get(pk=user.pk).is_active
    # The logout's news could not be sent: said, not raised; and this process, which runs
    # no event loop, tries no more sends on a layer that failed (the save's).
    told = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert told == [
        f"Could not send chat.session_ended to user.{user.pk}",
        "The channel layer failed: this process sends no more events. Open tabs find out at "
        "their next frame or reload.",
    ]


# --- the check itself, on the real database -------------------------------------------------


def logged_in_session(user: User) -> str:
    client = Client()
    client.force_login(user)
    return str(client.session.session_key)


def test_check_session_holds_for_a_live_session(user: User) -> None:
    key = logged_in_session(user)
    verdict = check_session(key, user.pk)
    assert verdict.ended is None
    assert verdict.expires_at == Session.objects.get(pk=key).expire_date


def expire_now(key: str) -> None:
    Session.objects.filter(pk=key).update(expire_date=timezone.now() - timedelta(seconds=1))


def deactivate(user: User) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)


def set_password(user: User) -> None:
    user.set_password(NEW_PASSWORD)
    user.save()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda user, key: Session.objects.filter(pk=key).delete(), "signed_out"),
        (lambda user, key: expire_now(key), "signed_out"),
        (lambda user, key: set_password(user), "password_changed"),
        (lambda user, key: deactivate(user), "account_closed"),
        (lambda user, key: user.delete(), "account_closed"),
    ],
    ids=["flushed", "expired", "password", "inactive", "deleted"],
)
def test_check_session_ends_as_django_would(
    user: User, change: Callable[[User, str], object], reason: str
) -> None:
    key, user_id = logged_in_session(user), user.pk
    change(user, key)
    assert check_session(key, user_id).ended == reason


def test_check_session_refuses_another_users_session(user: User, admin: User) -> None:
    assert check_session(logged_in_session(admin), user.pk).ended == "signed_out"
    assert check_session(None, user.pk).ended == "signed_out"
    assert check_session("no-such-session-key", user.pk).ended == "signed_out"


def test_check_session_accepts_a_hash_made_with_a_fallback_secret_key(
    user: User, settings: Any
) -> None:
    key = logged_in_session(user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-after-a-rotation-" + "x" * 20
    assert check_session(key, user.pk).ended is None
