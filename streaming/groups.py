"""What a Django group means in chatsite besides its permissions: whether its members come
from the identity provider's groups claim (streaming/sso.py, services/memberships.py), the
models its members may pick (services/model_access.py, with MODEL_ACCESS=groups) and the
limits they answer to (services/quotas.py): of all a user's groups, the most generous."""

from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator
from django.db import models


def _count(help_text: str) -> "models.PositiveIntegerField[int | None, int | None]":
    """A count a group may set for its members (at least 1), or leave to the site."""
    return models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text=help_text
    )


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
    default_provider = models.BooleanField(
        "the default provider's model",
        default=False,
        help_text="With MODEL_ACCESS=groups: members may pick the model of the provider the "
        "environment configures (OPENAI_*).",
    )
    providers = models.ManyToManyField(
        "streaming.Provider",
        blank=True,
        related_name="+",
        help_text="With MODEL_ACCESS=groups: members may pick every model of these.",
    )
    provider_models = models.ManyToManyField(
        "streaming.ProviderModel",
        blank=True,
        related_name="+",
        help_text="With MODEL_ACCESS=groups: members may pick these models too.",
    )
    # Empty: the group says nothing of it. Of a user's groups, the most generous figure
    # applies in place of the site's; a figure staff set for the user applies before both.
    answers_at_once = _count(
        "Answers a member may have streaming at once. Empty: the site default "
        "(LIMIT_ANSWERS_PER_USER)."
    )
    messages_per_minute = _count(
        "Answers a member may start in a minute. Empty: the site default "
        "(LIMIT_MESSAGES_PER_MINUTE)."
    )
    daily_token_budget = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens a member may spend a day, from midnight UTC. Empty: the site "
        "default (DAILY_TOKEN_BUDGET). 0: no budget.",
    )
    storage_chars = models.PositiveBigIntegerField(
        "storage quota",
        null=True,
        blank=True,
        help_text="Characters of message text a member may store. Empty: the site default "
        "(STORAGE_QUOTA_CHARS). 0: no quota.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "chatsite rules"

    def __str__(self) -> str:
        return f"chatsite rules of {self.group}"
