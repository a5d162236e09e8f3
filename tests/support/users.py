"""Users as the tests log them in: one password, session cookies, the admin's user form."""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

#: Every user the tests make has this password.
PASSWORD = "correct horse battery staple"


def session_cookie(user: User) -> str:
    """A `sessionid` cookie value for ``user``, as a login would set it."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def user_change_form(user: User, *, daily_token_budget: str = "", **changes: Any) -> dict[str, Any]:
    """What the admin's user change form posts for ``user`` (unchecked boxes are absent),
    with its Limits inline: empty, or a new daily token budget."""
    joined = timezone.localtime(user.date_joined)
    form = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else None,
        "is_staff": "on" if user.is_staff else None,
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "quota-TOTAL_FORMS": "1",
        "quota-INITIAL_FORMS": "0",
        "quota-MIN_NUM_FORMS": "0",
        "quota-MAX_NUM_FORMS": "1",
        "quota-0-user": str(user.pk),
        "quota-0-daily_token_budget": daily_token_budget,
        "_save": "Save",
        **changes,
    }
    return {name: value for name, value in form.items() if value is not None}
