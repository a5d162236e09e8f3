"""A user's own settings: what their new conversations start with."""

from django.contrib.auth.models import User
from django.db import transaction

from streaming.models import UserSettings


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


def do_save_settings(user_settings: UserSettings) -> None:
    """Save settings a validated form (forms.UserSettingsForm) filled in."""
    with transaction.atomic():
        user_settings.save()
