"""Invitations: a link staff make that lets one person make an account (services/signups.py,
views_signup.py), once, before it expires; it may ask for an address at one domain, and
put the account in groups."""

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import models
from django.utils import timezone


def new_token() -> str:
    """32 random bytes, URL-safe: an invitation cannot be guessed."""
    return secrets.token_urlsafe(32)


def in_a_week() -> datetime:
    """An invitation's default expiry."""
    return timezone.now() + timedelta(days=7)


def _account() -> "models.ForeignKey[User | None, User | None]":
    """A user the invitation names for the record (kept when they are deleted: emptied)."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )


class Invitation(models.Model):
    """One invitation to make one account."""

    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    created_by = _account()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(
        default=in_a_week, help_text="After this it no longer opens. A week, unless changed."
    )
    email_domain = models.CharField(
        max_length=253,
        blank=True,
        help_text="e.g. example.com: the account's address must be at this domain, and is "
        "confirmed by a link sent to it before the account works. Empty: any address, no "
        "confirmation.",
    )
    groups = models.ManyToManyField(
        Group, blank=True, related_name="+", help_text="The account starts in these groups."
    )
    note = models.CharField(
        max_length=200, blank=True, help_text="For staff: whom it is for (not shown to them)."
    )
    used_at = models.DateTimeField(null=True, blank=True, editable=False)
    used_by = _account()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation{f' for {self.note}' if self.note else ''} ({self.created_at:%Y-%m-%d})"
