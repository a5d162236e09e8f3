"""A user's own settings: what their new conversations start with."""

from django.contrib.auth.models import User
from django.db import transaction

from streaming.models import UserSettings
from streaming.services import providers


def settings_for(user: User) -> UserSettings:
    """The user's settings, unsaved defaults if they never saved any."""
    found = UserSettings.objects.filter(user_id=user.pk).first()
    return found if found is not None else UserSettings(user=user)


def default_system_prompt(owner_id: int) -> str:
    """The system prompt a new conversation of ``owner_id`` starts with ('' for none)."""
    prompt: str | None = (
        UserSettings.objects.filter(user_id=owner_id)
        .values_list("default_system_prompt", flat=True)
        .first()
    )
    return prompt or ""


def default_model(owner_id: int) -> tuple[int | None, str]:
    """The provider and model a new conversation of ``owner_id`` starts with: the settings
    page's choice while it is still offered to them, else the site's default, ``(None,
    "")``, or, when their groups do not allow that, the first model the picker offers them."""
    chosen = (
        UserSettings.objects.filter(user_id=owner_id)
        .values_list("default_provider_id", "default_model")
        .first()
    )
    # The environment's provider offers one model, which "" stores whatever it is named.
    provider_id, model = (None, "") if chosen is None or chosen[0] is None else chosen
    if providers.choice_of(provider_id, model, owner_id)["available"]:
        return provider_id, model
    if provider_id is not None and providers.choice_of(None, "", owner_id)["available"]:
        return None, ""
    offered = providers.picker(owner_id)
    if not offered:
        return None, ""  # nothing is allowed: the first message says so
    first = offered[0]
    return first["provider_id"], first["models"][0]["model"] if first["provider_id"] else ""


def do_save_settings(user_settings: UserSettings) -> None:
    """Save settings a validated form (forms.UserSettingsForm) filled in."""
    with transaction.atomic():
        user_settings.save()
