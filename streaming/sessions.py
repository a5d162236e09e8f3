"""Sessions that end: a socket lives only as long as the login session it was opened with.

Django checks a session on every request; a WebSocket is one request that lasts for hours.
So each socket keeps its session (``SocketSession``) and checks it again, with the same rules
as Django's and Channels' ``get_user``: the session exists and has not expired, its user can
still log in (ModelBackend refuses inactive and deleted users) and the password it was made
with is still the user's (the session's auth hash). The checks come:

- on every frame from the browser, before the frame does anything;
- when the user's sockets are told a session of theirs ended, or may have: a logout, a save
  of the user (a new password, ``is_active`` off) or its deletion send ``chat.session_ended``
  to the group ``user.<id>``, which every socket of the user joins on every process;
- on a timer of the socket's own, at the session's expiry and at least every
  SOCKET_SESSION_CHECK_SECONDS, for endings nobody announces (an expiry, a bulk
  ``update()``) on a socket that sends nothing.

A socket whose session ended sends an `error` frame (code ``session_ended``) and closes with
4401. The user's running answers go on and are saved: an answer outlives sockets by design.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import import_module
from typing import Any, Literal, NamedTuple

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
    user_logged_out,
)
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import ValidationError
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from streaming import control, layer
from streaming.exceptions import SessionEnded
from streaming.services import events
from streaming.services.database import to_async

logger = logging.getLogger(__name__)

Reason = Literal["signed_out", "password_changed", "account_closed"]

MESSAGES: dict[Reason, str] = {
    "signed_out": "You were signed out. Sign in again to continue.",
    "password_changed": (
        "You were signed out because the password was changed. Sign in again to continue."
    ),
    "account_closed": "You were signed out: this account was deactivated or deleted.",
}

FINGERPRINT_SALT = "streaming.sessions.fingerprint"

# A check at the expiry instant may run a hair early by the database's reckoning; the next
# one comes this long after.
EXPIRY_MARGIN_SECONDS = 0.05


def ending(reason: Reason) -> SessionEnded:
    """The error a socket whose session ended for ``reason`` sends before it closes."""
    return SessionEnded(reason, MESSAGES[reason])


def fingerprint(session_key: str) -> str:
    """Names a session on the channel layer without the key itself, which is a credential."""
    return salted_hmac(FINGERPRINT_SALT, session_key, algorithm="sha256").hexdigest()


# --- is this session still good? -----------------------------------------------------------


class Verdict(NamedTuple):
    """What a check found: why the session ended (None: it holds), and when it expires."""

    ended: Reason | None
    #: When the session expires, if the session engine can tell (the database engines can).
    expires_at: datetime | None = None


def check_session(session_key: str | None, user_id: object) -> Verdict:
    """Whether the session ``session_key`` still logs ``user_id`` in, as Django would judge it.

    Two queries: the session, then the user. Nothing is written (Channels' and Django's
    ``get_user`` flush a session whose hash is stale; a check leaves that to them).
    """
    if not session_key:
        return Verdict("signed_out")
    data, expires_at = _load_session(session_key)
    try:
        session_user_id = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
        backend_path = data[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError):
        return Verdict("signed_out")  # gone, expired, or never logged in
    if backend_path not in settings.AUTHENTICATION_BACKENDS or str(session_user_id) != str(user_id):
        return Verdict("signed_out")
    user = load_backend(backend_path).get_user(session_user_id)
    if user is None:
        return Verdict("account_closed")  # deleted, or can no longer log in (inactive)
    if hasattr(user, "get_session_auth_hash"):
        session_hash = data.get(HASH_SESSION_KEY)
        # As Django's get_user: a hash made with a SECRET_KEY_FALLBACKS key still counts.
        hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
        if not session_hash or not any(constant_time_compare(session_hash, h) for h in hashes):
            return Verdict("password_changed")
    return Verdict(None, expires_at)


def _load_session(session_key: str) -> tuple[dict[str, Any], datetime | None]:
    """The session's data ({} if it is gone or expired) and, if known, when it expires."""
    store_class: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
    if issubclass(store_class, DatabaseSessionStore):  # db and cached_db: the row is the truth
        row = (
            store_class.get_model_class()
            .objects.filter(session_key=session_key, expire_date__gt=timezone.now())
            .only("session_data", "expire_date")
            .first()
        )
        if row is None:
            return {}, None
        return store_class().decode(row.session_data), row.expire_date
    return store_class(session_key).load(), None


# --- one socket's session ------------------------------------------------------------------


class SocketSession:
    """The login session one socket was opened with, checked until it ends.

    ``end`` is called once, with the error to send, when a check finds the session ended.
    """

    def __init__(
        self,
        session_key: str | None,
        user_id: object,
        end: Callable[[SessionEnded], Awaitable[None]],
    ) -> None:
        self.session_key = session_key
        self.user_id = user_id
        self.fingerprint = fingerprint(session_key) if session_key else None
        #: Set once the session was found ended (and ``end`` called).
        self.ended: SessionEnded | None = None
        self._end = end
        self._expires_at: datetime | None = None
        self._timer: asyncio.Task[None] | None = None

    async def holds(self) -> bool:
        """Check the session now; if it ended, end the socket (once) and say False."""
        if self.ended is None:
            verdict = await to_async(check_session)(self.session_key, self.user_id)
            if verdict.ended is None:
                self._expires_at = verdict.expires_at
            else:
                await self._finish(ending(verdict.ended))
        return self.ended is None

    async def on_event(self, event: control.SessionEndedEvent) -> None:
        """A session of this user ended, or may have: end if it is this one."""
        if self.fingerprint is not None and event["session"] == self.fingerprint:
            # A logout: the session is being flushed right now, so no need to look.
            await self._finish(ending("signed_out"))
            return
        try:
            await self.holds()
        except Exception:
            # As in the timer: without the database this socket can do nothing anyway, and
            # the timer looks again; a group event must not take the socket down.
            logger.exception("Could not check the session of a socket of user %s", self.user_id)

    def watch(self) -> None:
        """Check at the session's expiry and every SOCKET_SESSION_CHECK_SECONDS (the socket
        checked it with ``holds`` as it opened)."""
        self._timer = asyncio.create_task(self._watch())

    def stop(self) -> None:
        """Stop the timer (the socket closed)."""
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._next_check_in())
            try:
                if not await self.holds():
                    return
            except Exception:
                # The database is unreachable: this socket can do nothing without it anyway
                # (every frame needs it); try again at the next turn.
                logger.exception("Could not check the session of a socket of user %s", self.user_id)

    def _next_check_in(self) -> float:
        seconds = float(settings.SOCKET_SESSION_CHECK_SECONDS)
        if self._expires_at is not None:
            left = (self._expires_at - timezone.now()).total_seconds()
            seconds = min(seconds, max(left, 0.0) + EXPIRY_MARGIN_SECONDS)
        return seconds

    async def _finish(self, error: SessionEnded) -> None:
        if self.ended is not None:
            return
        self.ended = error
        await self._end(error)


# --- telling a user's sockets ----------------------------------------------------------------


def connect_signals() -> None:
    """Tell a user's sockets when a session of theirs may have ended (from ``ready()``)."""
    user_model = settings.AUTH_USER_MODEL
    user_logged_out.connect(_logged_out, dispatch_uid="streaming.sessions.logged_out")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="streaming.sessions.saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="streaming.sessions.deleted")


def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """A logout ends its own session only (the user's other sessions stay, as in Django)."""
    if user is None or user.pk is None:
        return
    # The signal comes before the session is flushed, so a check now would find it alive:
    # the event names the session that ends instead.
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    session_fingerprint = fingerprint(session_key) if session_key else None
    _tell_after_commit(user.pk, control.session_ended_event("logged_out", session_fingerprint))


def _user_saved(
    sender: Any,
    instance: Any,
    created: bool,
    raw: bool,
    update_fields: frozenset[str] | None,
    **kwargs: Any,
) -> None:
    """Any change to a user may end sessions (password, is_active): their sockets check."""
    # A login saves last_login and nothing else: no session can have ended by it.
    if created or raw or (update_fields is not None and update_fields <= {"last_login"}):
        return
    _tell_after_commit(instance.pk, control.session_ended_event("user_changed"))


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    _tell_after_commit(instance.pk, control.session_ended_event("user_deleted"))


def _tell_after_commit(user_id: object, event: control.SessionEndedEvent) -> None:
    # After the commit, or the sockets could check before the change is visible. A layer
    # that fails is logged and does not fail the logout or the save (events.on_commit).
    events.on_commit(layer.to_user(user_id, event))
