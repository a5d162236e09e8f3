"""Staff views of conversations and messages, and of each user's limits."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from streaming import services
from streaming.models import Conversation, Message, Quota
from streaming.services import quotas


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "role", "status", "content", "model", "finish_reason", "error")
    readonly_fields = fields
    ordering = ("created_at",)
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ("__str__", "owner", "message_count", "last_activity", "model", "created_at")
    list_select_related = ("owner",)
    search_fields = ("title", "owner__username", "owner__email", "messages__content")
    list_filter = ("messages__status", "model", "created_at", "updated_at")
    date_hierarchy = "updated_at"
    readonly_fields = ("id", "created_at", "updated_at")
    raw_id_fields = ("owner",)
    inlines = (MessageInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        queryset: QuerySet[Conversation] = super().get_queryset(request)
        return queryset.annotate(message_count=Count("messages"))

    @admin.display(description="Messages", ordering="message_count")
    def message_count(self, obj: Conversation) -> int:
        return obj.message_count  # type: ignore[attr-defined, no-any-return]

    @admin.display(description="Last activity", ordering="updated_at")
    def last_activity(self, obj: Conversation) -> object:
        return obj.updated_at

    # Deleting through the service stops a running answer and tells the open tabs.
    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        services.do_delete_conversation(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        for conversation in queryset:
            services.do_delete_conversation(conversation)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ("short_content", "role", "status", "model", "conversation", "created_at")
    list_filter = ("status", "role", "model", "created_at")
    search_fields = ("content", "error", "conversation__title", "conversation__owner__username")
    list_select_related = ("conversation",)
    date_hierarchy = "created_at"
    raw_id_fields = ("conversation",)
    readonly_fields = (
        "id",
        "conversation",
        "role",
        "content",
        "model",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "error",
        "client_id",
        "heartbeat_at",
        "created_at",
        "updated_at",
    )

    @admin.display(description="Content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80] or "(empty)"


class QuotaInline(admin.StackedInline[Quota, User]):
    model = Quota
    can_delete = False
    verbose_name = verbose_name_plural = "Limits"
    fields = ("daily_token_budget", "tokens_used_today")
    readonly_fields = ("tokens_used_today",)

    @admin.display(description="Tokens used today (UTC)")
    def tokens_used_today(self, obj: Quota) -> str:
        if obj.pk is None:
            return "-"
        used = quotas.tokens_used_since(obj.pk, quotas.start_of_day(timezone.now()))
        budget = quotas.daily_budget(obj.pk)
        return f"{used:,} of {budget:,}" if budget else f"{used:,} (no budget)"


# Django's own user admin, with the user's limits under it.
admin.site.unregister(User)


@admin.register(User)
class ChatUserAdmin(UserAdmin[User]):
    inlines = (*UserAdmin.inlines, QuotaInline)
