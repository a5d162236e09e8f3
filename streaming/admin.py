"""Staff views of conversations and messages, and of each user's limits."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from streaming import services
from streaming.forms import UserSettingsForm
from streaming.models import Conversation, Message, Quota, UserSettings
from streaming.services import exports, quotas, usage


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# What the usage CSV actions group by; the providers' key joins it when there are providers.
USAGE_CSV_GROUPS = ("user", "model")


def _usage_csv(messages: QuerySet[Message]) -> HttpResponse:
    rows = usage.summarize(messages, by=USAGE_CSV_GROUPS)
    return _download(usage.as_csv(rows, USAGE_CSV_GROUPS), "text/csv", "chatsite-usage.csv")


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "role",
        "status",
        "content",
        "parent",
        "model",
        "finish_reason",
        "error",
    )
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
    readonly_fields = ("id", "created_at", "updated_at", "message_tree")
    raw_id_fields = ("owner",)
    inlines = (MessageInline,)
    actions = ("export_selected",)

    @admin.action(description="Export selected conversations (JSON)")
    def export_selected(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> HttpResponse:
        # The same file a user exports (and can import): docs/export-format.md.
        chosen = Conversation.objects.filter(pk__in=queryset.values("pk")).order_by("-updated_at")
        return _download(exports.export_json(chosen), "application/json", "conversations.json")

    @admin.display(description="Messages as a tree")
    def message_tree(self, obj: Conversation) -> str:
        """Every message in reading order, the versions of a turn indented under the turn
        before them with the branch below each, and the branch shown in bold: what each tab
        of the conversation shows and what the model is sent."""
        if obj.pk is None:
            return "-"
        tree = services.Tree.of(obj)
        shown = {m.pk for m in tree.branch(obj.leaf_id)}
        rows = []
        # Depth first, without recursion: a branch can be thousands of messages long. Only
        # a turn with several versions indents; a plain conversation reads as a list.
        stack = [(m, 0, len(tree.children[None]) > 1) for m in reversed(tree.children[None])]
        while stack:
            message, depth, forked = stack.pop()
            versions = tree.versions(message)
            where = f"version {versions.index(message) + 1} of {len(versions)} · " if forked else ""
            label = format_html(
                "{}{} · {}{}: {}",
                "\u2003\u2003" * depth + ("↳ " if forked else ""),
                message.get_role_display(),
                where,
                message.get_status_display(),
                Truncator(message.content).chars(120) or "(empty)",
            )
            if message.pk in shown:
                label = format_html("<strong>{}</strong>", label)
            link = reverse("admin:streaming_message_change", args=[message.pk])
            rows.append(format_html('<a href="{}">{}</a>', link, label))
            children = tree.children.get(message.pk, [])
            fork = len(children) > 1
            stack.extend((child, depth + fork, fork) for child in reversed(children))
        if not rows:
            return "(no messages)"
        return format_html_join(mark_safe("<br>"), "{}", ((row,) for row in rows))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        queryset: QuerySet[Conversation] = super().get_queryset(request)
        # A subquery, not Count("messages"): a filter or search on messages joins them
        # again, and a count over that join counts each message once per matching row.
        count = (
            Message.objects.filter(conversation=OuterRef("pk"))
            .order_by()
            .values("conversation")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return queryset.annotate(message_count=Coalesce(Subquery(count), 0))

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
    list_display = (
        "short_content",
        "role",
        "status",
        "short_error",
        "prompt_tokens",
        "completion_tokens",
        "model",
        "conversation",
        "created_at",
    )
    list_filter = ("status", "role", "model", "created_at")
    search_fields = ("content", "error", "conversation__title", "conversation__owner__username")
    list_select_related = ("conversation",)
    date_hierarchy = "created_at"
    actions = ("export_usage",)

    @admin.action(description="Export usage of selected messages by user and model (CSV)")
    def export_usage(self, request: HttpRequest, queryset: QuerySet[Message]) -> HttpResponse:
        return _usage_csv(queryset)

    # What a message says and how it ended are the record of what happened: staff read
    # them, they do not rewrite them.
    def get_readonly_fields(self, request: HttpRequest, obj: Message | None = None) -> list[str]:
        return [field.name for field in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Content")
    def short_content(self, obj: Message) -> str:
        return Truncator(obj.content).chars(80) or "(empty)"

    @admin.display(description="Error", ordering="error")
    def short_error(self, obj: Message) -> str:
        return Truncator(obj.error).chars(60)


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
    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "prompt_tokens_used",
        "completion_tokens_used",
    )
    actions = ("export_usage",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return usage.annotate_totals(super().get_queryset(request), "conversation__owner")

    @admin.display(description="Tokens in (all time)", ordering="prompt_tokens_used")
    def prompt_tokens_used(self, obj: User) -> int:
        return obj.prompt_tokens_used  # type: ignore[attr-defined, no-any-return]

    @admin.display(description="Tokens out (all time)", ordering="completion_tokens_used")
    def completion_tokens_used(self, obj: User) -> int:
        return obj.completion_tokens_used  # type: ignore[attr-defined, no-any-return]

    @admin.action(description="Export usage of selected users by model (CSV)")
    def export_usage(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse:
        return _usage_csv(Message.objects.filter(conversation__owner__in=queryset.values("pk")))


@admin.register(UserSettings)
class UserSettingsAdmin(admin.ModelAdmin[UserSettings]):
    # The settings page's form: the same limit and checks on the prompt.
    form = UserSettingsForm
    fields = ("user", "default_system_prompt")
    list_display = ("user", "default_system_prompt")
    search_fields = ("user__username", "default_system_prompt")
    raw_id_fields = ("user",)
