"""The files people attach to their messages: a row each, and the storage that keeps the bytes.

A file is uploaded on its own, before its message is sent (its row has no message yet),
and a message names the ones it carries; the versions of a message (an edit) may name the
same ones. Its bytes are kept by Django's storage API under a random name, never the one
the client gave: the ``attachments`` storage of ``STORAGES`` (``ATTACH_STORAGE``; by
default a folder under ``MEDIA_ROOT``). ``streaming.models`` holds this model with the
others; ``services/attachments.py`` holds the rules.
"""

import os
import uuid
from typing import cast

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models
from django.utils import timezone
from django.utils.functional import LazyObject, empty

#: The folder of the storage that every attachment's bytes are kept under.
FOLDER = "attachments"


class _Kept(LazyObject[Storage]):
    """The ``attachments`` storage of ``STORAGES``, looked up when first used (as Django's
    ``default_storage`` is), so a field made at import follows the settings."""

    def _setup(self) -> None:
        self._wrapped = storages["attachments"]

    def forget(self) -> None:
        """Look the storage up again at its next use (the settings changed: tests)."""
        self._wrapped = empty  # type: ignore[assignment]


#: Where attachments' bytes are kept.
kept = _Kept()


def attachment_storage() -> Storage:
    """The storage attachments are kept in: ``kept`` (the field's ``storage`` callable)."""
    return cast(Storage, kept)


def stored_name(attachment: "Attachment", filename: str) -> str:
    """A random name under FOLDER for ``attachment``'s bytes. ``filename`` is never the
    client's: only its extension is kept, the one ``intake`` gave the type it found."""
    return f"{FOLDER}/{uuid.uuid4().hex}{os.path.splitext(filename)[1]}"


class Attachment(models.Model):
    """One file a user attached: what it is, found by its content, and where its bytes are."""

    class Kind(models.TextChoices):
        IMAGE = "image"
        TEXT = "text"
        PDF = "pdf"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    # Where it was uploaded (None: a new conversation's first message, not saved yet); the
    # conversation of the message it is sent with, from then on.
    conversation = models.ForeignKey(
        "streaming.Conversation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    messages = models.ManyToManyField("streaming.Message", related_name="attachments", blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    #: The type chatsite found in the content and serves it as.
    content_type = models.CharField(max_length=100)
    #: The client's file name, shown to its owner only; never a path, never logged.
    name = models.CharField(max_length=255)
    file = models.FileField(upload_to=stored_name, storage=attachment_storage, max_length=200)
    size = models.PositiveBigIntegerField(help_text="Bytes stored.")
    sha256 = models.CharField(max_length=64, help_text="Of the bytes stored.")
    #: A document's text, as the model is sent it (a PDF's extracted text); images: empty.
    text = models.TextField(blank=True, editable=False)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    #: What sending it to a model costs, in estimated tokens (an image by its tiles).
    tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["owner", "created_at"], name="attachment_owner")]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.size} bytes)"
