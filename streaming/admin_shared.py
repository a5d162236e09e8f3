"""The admin's list of share links: staff see every link and revoke any."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from streaming.sharing import SharedLink, SharedMessage, SharingSwitch


@admin.register(SharedLink)
class SharedLinkAdmin(admin.ModelAdmin[SharedLink]):
    """Links are made by owners on their conversation's page; here they are only read and
    revoked (a revoked link answers 404 at once, on every process)."""

    list_display = ("title", "owner", "audience", "count", "created_at", "expires_at", "revoked_at")
    list_filter = ("audience", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("title", "owner__username")
    fields = (
        "title",
        "owner",
        "conversation",
        "audience",
        "count",
        "created_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected links")
    def revoke(self, request: HttpRequest, queryset: QuerySet[SharedLink]) -> None:
        done = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        SharedMessage.objects.filter(link__in=queryset).delete()  # the copies go too
        self.message_user(request, f"{done} link(s) revoked.", messages.SUCCESS)


@admin.register(SharingSwitch)
class SharingSwitchAdmin(admin.ModelAdmin[SharingSwitch]):
    """One row: sharing on or off for the whole site."""

    list_display = ("__str__", "on")
    list_editable = ("on",)
    list_display_links = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SharingSwitch.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: SharingSwitch | None = None) -> bool:
        return False
