"""The admin's pages for accounts from single sign-on: groups with chatsite's rules, and
only those of allauth's pages that mean something here."""

from typing import Any

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialApp, SocialToken
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from streaming import sso
from streaming.groups import GroupAccess
from streaming.invitations import Invitation


class AdminLoginForm(sso.LocalLoginRule, AdminAuthenticationForm):
    """The admin's login form (staff only), under the login page's rule (superusers only,
    with LOCAL_LOGIN=superusers): the admin is no second door for passwords."""


admin.site.login_form = AdminLoginForm

# The provider is configured by environment (OIDC_*), tokens are not kept, and an address
# is the provider's to vouch for: these pages would show nothing or mislead. Sign-ins are
# listed under "Social accounts", one per person and provider.
for _model in (SocialApp, SocialToken, EmailAddress):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class GroupAccessInline(admin.StackedInline[GroupAccess, Group]):
    model = GroupAccess
    can_delete = False
    verbose_name_plural = "chatsite rules"
    filter_horizontal = ("providers", "provider_models")


admin.site.unregister(Group)


@admin.register(Group)
class ChatGroupAdmin(GroupAdmin):
    """Django's group page, with chatsite's rules for the group."""

    inlines = (GroupAccessInline,)
    list_display = ("name", "from_provider")
    list_select_related = ("access",)

    @admin.display(boolean=True, description="members from the identity provider")
    def from_provider(self, group: Group) -> bool:
        access = getattr(group, "access", None)
        return bool(access and access.from_provider)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    """Invitations: made here, sent by staff to the person (the link is on the page once
    saved), used once."""

    list_display = ("__str__", "email_domain", "expires_at", "used_by", "used_at")
    list_filter = (("used_at", admin.EmptyFieldListFilter),)
    fields = ("note", "expires_at", "email_domain", "groups", "link", "used_by", "used_at")
    readonly_fields = ("link", "used_by", "used_at")
    filter_horizontal = ("groups",)

    @admin.display(description="invitation link")
    def link(self, invitation: Invitation) -> str:
        if invitation.pk is None:
            return "Shown here once saved."
        path = reverse("invite", args=[invitation.token])
        return format_html('<a href="{}" id="invitation-link">{}</a>', path, path)

    def save_model(self, request: HttpRequest, obj: Invitation, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
