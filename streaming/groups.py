"""What a Django group means in chatsite besides its permissions: whether its members come
from the identity provider's groups claim (streaming/sso.py, services/memberships.py)."""

from django.contrib.auth.models import Group
from django.db import models


class GroupAccess(models.Model):
    """chatsite's rules for one group; a group without a row has none of them."""

    group = models.OneToOneField(
        Group, on_delete=models.CASCADE, primary_key=True, related_name="access"
    )
    # Off by default: a claim may name only groups staff marked, so a provider (or a user
    # who can name their own groups there) cannot join one staff keep by hand.
    from_provider = models.BooleanField(
        "members from the identity provider",
        default=False,
        help_text="At each sign-in with single sign-on, a user joins this group when the "
        "provider's groups claim names it, and leaves it when the claim does not. Off: staff "
        "set its members here; sign-ins leave them alone.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "chatsite rules"

    def __str__(self) -> str:
        return f"chatsite rules of {self.group}"
