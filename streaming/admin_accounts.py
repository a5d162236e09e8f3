"""The admin's pages for accounts from single sign-on: groups with chatsite's rules, and
only those of allauth's pages that mean something here."""

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialApp, SocialToken
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group

from streaming import sso
from streaming.groups import GroupAccess


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
