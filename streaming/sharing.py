"""Share links: a conversation's shown branch as it was when shared (a copy, never the live
conversation), read through a link with an unguessable token (services/shares.py,
views_shared.py)."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


def new_token() -> str:
    """32 random bytes, URL-safe: guessing one among any number of links is hopeless."""
    return secrets.token_urlsafe(32)


class SharedLink(models.Model):
    """One link to one conversation's branch, as it was when shared."""

    class Audience(models.TextChoices):
        SIGNED_IN = "signed_in", "People signed in to this site"
        ANYONE = "anyone", "Anyone with the link"

    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    # Deleting the conversation (or its owner) deletes its links: they end with it.
    conversation = models.ForeignKey(
        "streaming.Conversation", on_delete=models.CASCADE, related_name="shared_links"
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    #: The conversation's title when it was shared.
    title = models.CharField(max_length=200, editable=False)
    audience = models.CharField(max_length=16, choices=Audience.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    #: How many messages the copy holds.
    count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "created_at"], name="shared_link_owner")]

    def __str__(self) -> str:
        return f"Share of {self.title!r}"


class SharedMessage(models.Model):
    """One message of a share's copy, in the branch's order."""

    link = models.ForeignKey(SharedLink, on_delete=models.CASCADE, related_name="messages")
    position = models.PositiveIntegerField()
    role = models.CharField(max_length=16)
    content = models.TextField(blank=True)
    #: Names of the files the message carried (the files themselves are not shared).
    files = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["link", "position"], name="shared_message_place")
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.position} of {self.link_id}"


class SharingSwitch(models.Model):
    """Staff's switch for the whole site, in the admin (one row, made when first saved):
    off, no link opens and none can be made, whatever SHARE_LINKS allows."""

    on = models.BooleanField(
        "share links work",
        default=True,
        help_text="Off: every share link answers 404 at once, on every server process, and "
        "nobody can make one; links are kept, and work again when switched back on.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "sharing, site-wide"

    def __str__(self) -> str:
        return "Share links work" if self.on else "Share links are off"
