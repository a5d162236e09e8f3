"""Staff views of attached files: read-only, by what chatsite found them to be.

The list (owner, conversation, kind, type, size, time) and each file's page show what the
file is and what it costs, never what is in it: not its bytes, not its name (its owner's
words, shown to them only: ``Attachment.name``), not a document's text (only its length).
A file's row is made by an upload or an import and goes with its conversation: staff add,
change and delete none here (a row deleted alone would leave its messages naming it and its
owner's storage counting it).
"""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from streaming.models import Attachment, Message


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin[Attachment]):
    list_display = (
        "__str__",
        "owner",
        "conversation",
        "kind",
        "content_type",
        "size",
        "created_at",
    )
    list_select_related = ("owner", "conversation")
    list_filter = ("kind", "content_type", "created_at")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "owner",
        "conversation",
        "carried_by",
        "kind",
        "content_type",
        "size",
        "sha256",
        "width",
        "height",
        "tokens",
        "text_length",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attachment]:
        # A PDF's text can be long: only its length is read.
        queryset: QuerySet[Attachment] = super().get_queryset(request)
        return queryset.defer("text").annotate(text_chars=Length("text"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Text (characters)")
    def text_length(self, obj: Attachment) -> int:
        """What the model is sent of a document, counted; an image has none."""
        return obj.text_chars  # type: ignore[attr-defined, no-any-return]

    @admin.display(description="Sent with")
    def carried_by(self, obj: Attachment) -> SafeString | str:
        """The messages that name the file (the versions of an edit may share it)."""
        messages = obj.messages.order_by("created_at").only("pk", "created_at")
        links = format_html_join(
            mark_safe("<br>"),
            '<a href="{}">message of {}</a>',
            (
                (
                    reverse("admin:streaming_message_change", args=[m.pk]),
                    f"{m.created_at:%Y-%m-%d %H:%M}",
                )
                for m in messages
            ),
        )
        return links or "(no message yet)"


def message_files(message: Message) -> SafeString | str:
    """A message's files for its admin page, from what it keeps of them (no query): each
    one's kind, type and size (an image's pixels too), linked to its page; not its name."""
    if not message.attached:
        return "-"
    return format_html_join(
        mark_safe("<br>"),
        '<a href="{}">{}</a> · {} · {} bytes{}',
        (
            (
                reverse("admin:streaming_attachment_change", args=[shown["id"]]),
                shown["kind"],
                shown["content_type"],
                f"{shown['size']:,}",
                _pixels(shown),
            )
            for shown in message.attached
        ),
    )


def _pixels(shown: dict[str, Any]) -> str:
    if shown.get("width") and shown.get("height"):
        return format_html(" · {} by {} pixels", shown["width"], shown["height"])
    return ""
