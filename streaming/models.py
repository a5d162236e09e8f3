"""Conversations and their messages."""

import re
import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from streaming import keys
from streaming.groups import GroupAccess as GroupAccess  # groups' rules: groups.py
from streaming.invitations import Invitation as Invitation  # invitations.py
from streaming.openai import OWN_HEADERS
from streaming.sharing import SharedLink as SharedLink  # share links: sharing.py
from streaming.uploads import Attachment as Attachment  # the files attached: uploads.py

#: PostgreSQL's text search configuration: English stems ("answers" finds "answer").
SEARCH_CONFIG = "english"


def search_document(field: str) -> SearchVector:
    """The text search vector of ``field`` (PostgreSQL), as its GIN index holds it: one
    expression for the index and the query, as the planner uses an expression index only
    for a query that spells the very same expression, configuration included."""
    return SearchVector(field, config=SEARCH_CONFIG)


def group_name(conversation_id: object) -> str:
    """The channel-layer group every socket and generation of a conversation joins."""
    return f"conv.{conversation_id}"


def control_group_name(conversation_id: object) -> str:
    """The group a conversation's running answer listens on for stop and sync requests
    (not the conversation's own group: there the answer would receive every delta it sends)."""
    return f"conv.{conversation_id}.control"


# RFC 9110's token: the characters a header's name may have.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def validate_extra_headers(value: object) -> None:
    """Refuse anything but {"Header-Name": "value"} with names the client does not own."""
    if not isinstance(value, dict):
        raise ValidationError('Extra headers are a JSON object: {"Header-Name": "value"}.')
    for name, header in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValidationError(f"{name!r} is not a valid header name.")
        # The client sets these itself (streaming/openai.py drops them too); the key goes in
        # the encrypted API key, never in a plain-text header.
        if name.lower() in OWN_HEADERS:
            raise ValidationError(
                f"{name} is set by the site itself (the API key goes in its own field, "
                "where it is stored encrypted)."
            )
        if not isinstance(header, str) or "\r" in header or "\n" in header:
            raise ValidationError(f"The value of {name} must be text on one line.")


class Provider(models.Model):
    """An OpenAI-compatible API that staff connected, besides the environment's default one."""

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(
        "Base URL",
        max_length=500,
        help_text="The API root, e.g. https://openrouter.ai/api/v1: /chat/completions and "
        "/models are appended.",
    )
    # A Fernet token (streaming/keys.py), never the key itself; empty: no key is sent.
    api_key_encrypted = models.TextField(blank=True, editable=False)
    extra_headers = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_extra_headers],
        help_text='Sent with every request, e.g. {"HTTP-Referer": "https://chat.example.com"}. '
        "Stored as plain text: put secrets in the API key.",
    )
    enabled = models.BooleanField(
        default=True,
        help_text="Off: its models leave the picker; chats that chose one must pick "
        "another before their next message.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    def set_api_key(self, plain: str) -> None:
        """Store ``plain`` encrypted (an empty one: no key); saved with the row."""
        self.api_key_encrypted = keys.encrypt(plain) if plain else ""

    def api_key(self) -> str:
        """The key in clear; KeyUnreadable if the secret it was sealed with has changed."""
        if not self.api_key_encrypted:
            return ""
        return keys.decrypt(self.api_key_encrypted, provider=self.name)


class ProviderModel(models.Model):
    """One model a provider offers in the picker."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField(
        "Model ID", max_length=200, help_text="As the API names it, e.g. gpt-4o-mini."
    )
    display_name = models.CharField(
        max_length=200, blank=True, help_text="What the picker shows; empty: the model ID."
    )
    enabled = models.BooleanField(default=True)
    vision = models.BooleanField(
        "Sees images", default=False, help_text="It accepts images (attached to messages)."
    )
    position = models.PositiveIntegerField(default=0, help_text="Lower comes first.")

    class Meta:
        ordering = ["position", "model_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model_id"], name="unique_model_per_provider"
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return self.display_name or self.model_id


class Conversation(models.Model):
    """One chat thread, owned by one user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    # The model answers come from: ``model`` of ``provider``; no provider is the
    # environment's default one (OPENAI_*), where an empty model means OPENAI_MODEL.
    # Deleting a provider sends its conversations back to that default.
    provider = models.ForeignKey(
        Provider,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: the site's default provider.",
    )
    model = models.CharField(max_length=200, blank=True, help_text="Empty: the site default.")
    # The last message of the branch shown (messages form a tree: each edit and regenerated
    # answer is a version beside the old one). Every tab shows this branch, and the model is
    # sent it. Null: the newest message (a conversation with none, or made by hand).
    leaf = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Moved forward by every new message, so it is also "last activity".
    updated_at = models.DateTimeField(auto_now=True)
    # Set by a delete: hidden everywhere at once, restorable for DELETE_UNDO_SECONDS, then
    # purged for real (services/deletion.py).
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent"),
            # Search (PostgreSQL only: migration 0010 creates it nowhere else).
            GinIndex(search_document("title"), name="conversation_search"),
        ]

    def __str__(self) -> str:
        return self.title or "New conversation"

    @property
    def group_name(self) -> str:
        """The channel-layer group every socket of this conversation joins."""
        return group_name(self.id)

    @property
    def control_group(self) -> str:
        """The group the conversation's running answer listens on for stop and sync."""
        return control_group_name(self.id)


class Message(models.Model):
    """One turn of a conversation; an assistant message carries its stream's outcome."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        COMPLETE = "complete"
        CANCELLED = "cancelled"
        ERROR = "error"
        INTERRUPTED = "interrupted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # The message this one follows: an answer follows its user message, and a user message
    # the answer before it (None: the conversation's first turn). Versions of a message (an
    # edit, a regenerated answer) share their parent.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        editable=False,
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    # Who produced an answer, written when it starts: the provider, and its name as it was
    # then, so the answer still says so once the provider is renamed or deleted.
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider_name = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # The request's size in estimated tokens (streaming.text.estimate_tokens), counted
    # against the daily budget when the provider reports no usage (a stopped answer).
    prompt_estimate = models.PositiveIntegerField(null=True, blank=True, editable=False)
    error = models.TextField(blank=True)
    # The browser's id for a user message, so a resend after a reconnect is recognised.
    client_id = models.UUIDField(null=True, blank=True, editable=False)
    # The `seq` of the last delta contained in `content`, so a snapshot can resume from it.
    seq = models.PositiveIntegerField(default=0, editable=False)
    # Written with every checkpoint of a streaming answer, by the database's clock (so hosts
    # with skewed clocks agree); a stale one means its process died.
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Someone asked to stop this answer; its process honours it at the next checkpoint even
    # if the faster channel-layer request was lost or came before the answer listened.
    stop_requested = models.BooleanField(default=False, editable=False)
    # Read in from an export file: its token counts are history, not spent on this site, so
    # usage reports and the daily budget leave it out (services.usage, services.quotas).
    imported = models.BooleanField(default=False, editable=False)
    # A user message's attachments as frames show them (services.attachments.shown), kept
    # with it so a window of messages reads no more rows; and what sending them costs.
    attached = models.JSONField(default=list, blank=True, editable=False)
    attachment_tokens = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_history"),
            models.Index(fields=["status", "created_at"], name="message_status"),
            models.Index(
                fields=["heartbeat_at"],
                condition=Q(status="streaming"),
                name="message_streaming_heartbeat",
            ),
            # Search (PostgreSQL only: migration 0010 creates it nowhere else).
            GinIndex(search_document("content"), name="message_search"),
        ]
        constraints = [
            # The database, not Python, decides who may stream: one answer at a time.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status="streaming"),
                name="one_streaming_answer_per_conversation",
            ),
            models.UniqueConstraint(
                fields=["conversation", "client_id"], name="unique_client_id_per_conversation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    @property
    def continuable(self) -> bool:
        """An answer cut off by the model's length limit, with text to go on from and room
        left under STREAM_MAX_ANSWER_CHARS: Continue may ask for more of it
        (services/continuation.py). An imported one was not written here: it is not."""
        return (
            self.role == self.Role.ASSISTANT
            and self.status not in (self.Status.STREAMING, self.Status.PENDING)
            and self.finish_reason == "length"
            and not self.imported
            and 0 < len(self.content) < settings.STREAM_MAX_ANSWER_CHARS
        )

    @property
    def usage(self) -> dict[str, int] | None:
        """Token counts as the API reported them, or None when it reported none."""
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        prompt, completion = self.prompt_tokens or 0, self.completion_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


class EarlyStop(models.Model):
    """A stop that came before what it names was saved: the `stop` of a message (or retry)
    by its client_id, from another socket or process than the one saving it. When that is
    saved, its answer is saved stopped and the model is not asked (services/stops.py)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    client_id = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"], name="unique_early_stop_per_conversation"
            )
        ]

    def __str__(self) -> str:
        return f"Stop of {self.client_id}"


class Continuation(models.Model):
    """One time an answer was continued (Continue): the tokens it cost and when, for the
    daily budget and the limit of answers a minute, which count it as an answer of its own;
    its text and usage are the answer's (added to them when it ends)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="continuations")
    started_at = models.DateTimeField(default=timezone.now)
    # The answer's length and token counts before it, so what it added can be told apart.
    base_chars = models.PositiveIntegerField()
    base_prompt_tokens = models.PositiveIntegerField(null=True)
    base_completion_tokens = models.PositiveIntegerField(null=True)
    # Its request's size in estimated tokens, counted when the provider reports no usage.
    prompt_estimate = models.PositiveIntegerField()
    # Once it ended: the characters it added (None while it streams), and its own usage as
    # the provider reported it (None: not reported).
    chars = models.PositiveIntegerField(null=True)
    prompt_tokens = models.PositiveIntegerField(null=True)
    completion_tokens = models.PositiveIntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["started_at"], name="continuation_started")]

    def __str__(self) -> str:
        return f"Continuation of {self.message_id} at {self.started_at:%Y-%m-%d %H:%M}"


class Quota(models.Model):
    """What staff set for one user in place of the site's default limits."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="quota"
    )
    daily_token_budget = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens (prompt and answer) a day, from midnight UTC. Empty: the site default "
        "(DAILY_TOKEN_BUDGET). 0: no budget.",
    )
    storage_chars = models.PositiveBigIntegerField(
        "storage quota",
        null=True,
        blank=True,
        help_text="Characters of message text (every version, imported ones too) the user may "
        "store. Empty: the site default (STORAGE_QUOTA_CHARS). 0: no quota.",
    )

    def __str__(self) -> str:
        return f"Limits of {self.user}"


class Storage(models.Model):
    """The characters of message text one user stores, counted as they change
    (services/storage.py), so a send checks one row rather than summing every message."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    chars = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"Storage of {self.user}"


class Import(models.Model):
    """One import a user started, refused or not: counted against IMPORTS_PER_DAY."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["owner", "started_at"], name="import_owner_recent")]

    def __str__(self) -> str:
        return f"Import of {self.owner} at {self.started_at:%Y-%m-%d %H:%M}"


class UserSettings(models.Model):
    """What a user chose for their own new conversations (the settings page)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="chat_settings",
    )
    # Validated like a conversation's own (forms.SystemPromptField): it becomes one.
    default_system_prompt = models.TextField(
        blank=True, help_text="Given to each new conversation. Empty: none."
    )
    # The model new conversations start with: ``default_model`` of ``default_provider``
    # (None: the environment's provider). Empty model: the site's default. One no longer
    # offered is passed over for the site's default, not refused.
    default_provider = models.ForeignKey(
        "Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    default_model = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "user settings"

    def __str__(self) -> str:
        return f"Settings of {self.user}"
