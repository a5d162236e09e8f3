"""Staff views of conversations and messages, of providers and their models, and of each
user's limits."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.text import Truncator

from streaming import (
    admin_accounts,  # noqa: F401 - its pages register as it is imported
    admin_files,
    admin_shared,  # noqa: F401 - its pages register as it is imported
    admin_tree,
    views_account,
)
from streaming.exceptions import ChatError
from streaming.forms import UserSettingsForm
from streaming.models import Conversation, Message, Provider, ProviderModel, Quota, UserSettings
from streaming.services import deletion, exports, providers, quotas, storage, usage


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# What the usage CSV actions group by.
USAGE_CSV_GROUPS = ("user", "provider", "model")


def _usage_csv(messages: QuerySet[Message]) -> HttpResponse:
    rows = usage.summarize(messages, by=USAGE_CSV_GROUPS)
    return _download(usage.as_csv(rows, USAGE_CSV_GROUPS), "text/csv", "chatsite-usage.csv")


class TokenTotalsColumns:
    """Columns of what each row's answers cost: its queryset must carry
    ``usage.annotate_totals``."""

    @admin.display(description="Tokens in (all time)", ordering="prompt_tokens_used")
    def prompt_tokens_used(self, obj: Any) -> int:
        return obj.prompt_tokens_used  # type: ignore[no-any-return]

    @admin.display(description="Tokens out (all time)", ordering="completion_tokens_used")
    def completion_tokens_used(self, obj: Any) -> int:
        return obj.completion_tokens_used  # type: ignore[no-any-return]


class MessageInline(admin.TabularInline[Message, Conversation]):
    """A conversation's newest messages (``ConversationAdmin.get_formset_kwargs``)."""

    model = Message
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "role",
        "status",
        "content",
        "parent",
        "provider_name",
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
    list_display = (
        "__str__",
        "owner",
        "message_count",
        "last_activity",
        "model_and_provider",
        "created_at",
    )
    list_select_related = ("owner", "provider")
    search_fields = ("title", "owner__username", "owner__email", "messages__content")
    list_filter = ("messages__status", "provider", "model", "created_at", "updated_at")
    date_hierarchy = "updated_at"
    readonly_fields = ("id", "created_at", "updated_at", "message_tree")
    raw_id_fields = ("owner",)
    inlines = (MessageInline,)
    actions = ("export_selected",)

    @admin.action(description="Export selected conversations (JSON, or a ZIP with their files)")
    def export_selected(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> HttpResponse | StreamingHttpResponse:
        # The same file a user exports (and can import): docs/export-format.md.
        chosen = Conversation.objects.filter(pk__in=queryset.values("pk")).order_by("-updated_at")
        if exports.with_files(chosen):
            return views_account.zip_download(
                lambda files: exports.json_pieces(chosen, files), "conversations.zip"
            )
        return _download(exports.export_json(chosen), "application/json", "conversations.json")

    @admin.display(description="Messages as a tree")
    def message_tree(self, obj: Conversation) -> str:
        """The messages in reading order, versions indented, the branch shown in bold; of a
        long conversation, the end of the branch shown (admin_tree.py)."""
        return "-" if obj.pk is None else admin_tree.message_tree(obj)

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Conversation, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, MessageInline) and obj.pk is not None:
            # The newest rows only: a conversation can hold hundreds of thousands.
            newest = obj.messages.order_by("-created_at", "-id").values("pk")
            kwargs["queryset"] = kwargs["queryset"].filter(
                pk__in=newest[: admin_tree.TREE_MESSAGES]
            )
        return kwargs

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

    @admin.display(description="Model", ordering="model")
    def model_and_provider(self, obj: Conversation) -> str:
        """The model of its next answer and whose it is (no provider: the site's default)."""
        model = obj.model or settings.OPENAI_MODEL
        provider = obj.provider.name if obj.provider else settings.OPENAI_PROVIDER_NAME
        return f"{model} · {provider}"

    # Deleting through the service stops a running answer and tells the open tabs.
    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        deletion.do_delete_conversation(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        for conversation in queryset:
            deletion.do_delete_conversation(conversation)


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
        "provider_column",
        "conversation",
        "created_at",
    )
    list_filter = ("status", "role", "provider_name", "model", "created_at")
    search_fields = ("content", "error", "conversation__title", "conversation__owner__username")
    list_select_related = ("conversation",)
    date_hierarchy = "created_at"
    actions = ("export_usage",)

    @admin.action(description="Export usage of selected messages by user, provider and model (CSV)")
    def export_usage(self, request: HttpRequest, queryset: QuerySet[Message]) -> HttpResponse:
        return _usage_csv(queryset)

    # What a message says and how it ended are the record of what happened: staff read
    # them, they do not rewrite them. Its files are listed by what they are, without the
    # names that `attached` keeps for its owner's page (admin_files.py).
    def get_readonly_fields(self, request: HttpRequest, obj: Message | None = None) -> list[str]:
        return [
            "files" if field.name == "attached" else field.name for field in Message._meta.fields
        ]

    @admin.display(description="Files")
    def files(self, obj: Message) -> str:
        return admin_files.message_files(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Content")
    def short_content(self, obj: Message) -> str:
        return Truncator(obj.content).chars(80) or "(empty)"

    @admin.display(description="Error", ordering="error")
    def short_error(self, obj: Message) -> str:
        return Truncator(obj.error).chars(60)

    # The name the answer recorded: still there once the provider is renamed or deleted.
    @admin.display(description="Provider", ordering="provider_name")
    def provider_column(self, obj: Message) -> str:
        return obj.provider_name


class ProviderForm(forms.ModelForm[Provider]):
    """A provider, with its API key write-only: typed in, stored encrypted, never shown."""

    base_url = forms.URLField(
        label="Base URL",
        max_length=500,
        assume_scheme="https",
        help_text=Provider._meta.get_field("base_url").help_text,
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        # Never rendered back: the page source of the form holds no key.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Sent as a Bearer token, stored encrypted. Leave empty to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(
        label="Clear the key", required=False, help_text="Remove the stored key: none is sent."
    )

    class Meta:
        model = Provider
        fields = ("name", "base_url", "api_key", "clear_api_key", "extra_headers", "enabled")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if cleaned.get("clear_api_key") and cleaned.get("api_key"):
            raise forms.ValidationError("Type a new key or clear the stored one, not both.")
        return cleaned

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            provider.set_api_key("")
        elif self.cleaned_data.get("api_key"):
            provider.set_api_key(self.cleaned_data["api_key"])
        if commit:
            provider.save()
        return provider


class ProviderModelInline(admin.TabularInline[ProviderModel, Provider]):
    model = ProviderModel
    extra = 0
    fields = ("model_id", "display_name", "enabled", "vision", "position")


@admin.register(Provider)
class ProviderAdmin(TokenTotalsColumns, admin.ModelAdmin[Provider]):
    form = ProviderForm
    list_display = (
        "name",
        "base_url",
        "enabled",
        "key_stored",
        "model_count",
        "prompt_tokens_used",
        "completion_tokens_used",
        "created_at",
    )
    list_filter = ("enabled",)
    search_fields = ("name", "base_url")
    readonly_fields = ("key_stored",)
    inlines = (ProviderModelInline,)
    actions = ("fetch_models", "export_usage")

    def get_fields(self, request: HttpRequest, obj: Provider | None = None) -> tuple[str, ...]:
        # "Clear the key" only where there is one to clear.
        clear = ("clear_api_key",) if obj is not None and obj.has_api_key else ()
        return ("name", "base_url", "key_stored", "api_key", *clear, "extra_headers", "enabled")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        queryset: QuerySet[Provider] = super().get_queryset(request)
        return usage.annotate_totals(queryset.annotate(model_count=Count("models")), "provider")

    @admin.display(description="API key stored", boolean=True)
    def key_stored(self, obj: Provider) -> bool:
        return obj.has_api_key

    @admin.display(description="Models", ordering="model_count")
    def model_count(self, obj: Provider) -> int:
        return obj.model_count  # type: ignore[attr-defined, no-any-return]

    @admin.action(description="Export usage of selected providers by user and model (CSV)")
    def export_usage(self, request: HttpRequest, queryset: QuerySet[Provider]) -> HttpResponse:
        return _usage_csv(Message.objects.filter(provider__in=queryset.values("pk")))

    @admin.action(description="Fetch models from the provider's /models", permissions=["change"])
    def fetch_models(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        """Add the models each provider lists that are not known yet; say what happened."""
        for provider in queryset:
            try:
                fetched = providers.do_fetch_models(provider)
            except ChatError as exc:
                self.message_user(
                    request,
                    f"{provider.name}: could not fetch models: {exc.message}",
                    messages.ERROR,
                )
                continue
            added = ", ".join(fetched.added) if fetched.added else "none"
            seeing = (
                f" Marked as seeing images, as the list says: {', '.join(fetched.seeing)}."
                if fetched.seeing
                else ""
            )
            self.message_user(
                request,
                f"{provider.name}: {len(fetched.added)} model(s) added ({added}); "
                f"{len(fetched.known)} already known.{seeing}",
                messages.SUCCESS,
            )

    # Through the service: conversations that chose a deleted provider go back to the default.
    def delete_model(self, request: HttpRequest, obj: Provider) -> None:
        providers.do_delete_providers([obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        providers.do_delete_providers(list(queryset))


class QuotaInline(admin.StackedInline[Quota, User]):
    model = Quota
    can_delete = False
    verbose_name = verbose_name_plural = "Limits"
    fields = ("daily_token_budget", "tokens_used_today", "storage_chars", "storage_used")
    readonly_fields = ("tokens_used_today", "storage_used")

    @admin.display(description="Tokens used today (UTC)")
    def tokens_used_today(self, obj: Quota) -> str:
        if obj.pk is None:
            return "-"
        used = quotas.tokens_used_since(obj.pk, quotas.start_of_day(timezone.now()))
        budget = quotas.daily_budget(obj.pk)
        return f"{used:,} of {budget:,}" if budget else f"{used:,} (no budget)"

    @admin.display(description="Characters stored")
    def storage_used(self, obj: Quota) -> str:
        if obj.pk is None:
            return "-"
        return _storage_figure(obj.pk)


def _storage_figure(owner_id: int) -> str:
    used, limit = storage.used(owner_id), storage.quota(owner_id)
    return f"{used:,} of {limit:,}" if limit else f"{used:,} (no quota)"


# Django's own user admin, with the user's limits under it.
admin.site.unregister(User)


@admin.register(User)
class ChatUserAdmin(TokenTotalsColumns, UserAdmin[User]):
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

    @admin.action(description="Export usage of selected users by provider and model (CSV)")
    def export_usage(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse:
        return _usage_csv(Message.objects.filter(conversation__owner__in=queryset.values("pk")))


@admin.register(UserSettings)
class UserSettingsAdmin(admin.ModelAdmin[UserSettings]):
    # The settings page's form: the same limit and checks on the prompt.
    form = UserSettingsForm
    fields = ("user", "default_system_prompt", "default_model_choice")
    list_display = ("user", "default_system_prompt")
    search_fields = ("user__username", "default_system_prompt")
    raw_id_fields = ("user",)
