"""Which models a user may pick and be answered by: with ``MODEL_ACCESS=everyone`` every
model offered; with ``groups``, what any of the user's groups allows (streaming/groups.py:
the default provider's model, every model of some providers, single models), and every
model for a superuser. services/providers.py asks here for the picker, for a choice, and
before every answer."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import CharField, F, IntegerField, QuerySet, Value

from streaming.models import GroupAccess


@dataclass(frozen=True)
class Access:
    """The models one user may use."""

    #: Every model offered (MODEL_ACCESS=everyone, or a superuser).
    everything: bool
    #: The environment's provider's model (OPENAI_*).
    default: bool = False
    #: Providers every model of which the user may use.
    providers: frozenset[int] = frozenset()
    #: Single models (``ProviderModel`` ids) the user may use besides.
    models: frozenset[int] = frozenset()

    def allows(self, provider_id: int | None, model_row_id: int | None = None) -> bool:
        """Whether the user may use the model ``model_row_id`` of ``provider_id`` (None:
        the default provider's)."""
        if self.everything:
            return True
        if provider_id is None:
            return self.default
        return provider_id in self.providers or model_row_id in self.models


EVERYTHING = Access(everything=True)


def access_of(user_id: int) -> Access:
    """What ``user_id`` may use, read now: a group's change holds from the next check."""
    if settings.MODEL_ACCESS == "everyone":
        return EVERYTHING
    if user_id is None:
        # Nobody's (an unsaved row's): nothing, never the groups that have no members.
        return Access(everything=False)

    # One query: each row says one thing the user may use.
    def rows(kind: str, queryset: QuerySet[Any], of: str = "") -> QuerySet[Any]:
        number = F(of) if of else Value(0, output_field=IntegerField())
        return queryset.values_list(Value(kind, output_field=CharField()), number)

    rules = GroupAccess.objects.filter(group__user=user_id)
    found = rows("all", User.objects.filter(pk=user_id, is_superuser=True)).union(
        rows("default", rules.filter(default_provider=True)),
        rows(
            "provider",
            GroupAccess.providers.through.objects.filter(groupaccess__group__user=user_id),
            "provider_id",
        ),
        rows(
            "model",
            GroupAccess.provider_models.through.objects.filter(groupaccess__group__user=user_id),
            "providermodel_id",
        ),
        all=True,
    )
    kinds: dict[str, set[int]] = {"all": set(), "default": set(), "provider": set(), "model": set()}
    for kind, number in found:
        kinds[kind].add(number)
    if kinds["all"]:
        return EVERYTHING
    return Access(
        everything=False,
        default=bool(kinds["default"]),
        providers=frozenset(kinds["provider"]),
        models=frozenset(kinds["model"]),
    )
