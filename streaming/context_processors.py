"""Template context every page needs."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest

from streaming import sso
from streaming.services import signups
from streaming.services.user_settings import default_model


def model_info(request: HttpRequest) -> dict[str, object]:
    """Which model answers, and whether the built-in simulator answers the reader by
    default (the banner says so: base.html; a conversation's page says it for the model the
    conversation chose instead)."""
    return {
        "default_model": settings.OPENAI_MODEL,
        "model_simulated": settings.OPENAI_SIMULATED,
        # Called by the template only where the banner is drawn: one query, for those pages.
        "simulator_default": _simulator_default(request),
    }


def _simulator_default(request: HttpRequest) -> Callable[[], bool]:
    def answers() -> bool:
        if not settings.OPENAI_SIMULATED:
            return False
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return True  # a new conversation starts on the site's default
        provider_id, _ = default_model(user.pk)
        return provider_id is None

    return answers


def sign_in(request: HttpRequest) -> dict[str, object]:
    """What the login page shows besides its form: here, so the page of a paused login,
    which django-axes draws, shows it too; and whether the user has a password to change."""
    user = getattr(request, "user", None)
    return {
        "sso_name": settings.OIDC_NAME if sso.enabled() else "",
        "sso_provider_id": settings.OIDC_PROVIDER_ID,
        "local_form_for_everyone": sso.local_form_for_everyone(),
        "may_sign_up": signups.may_sign_up(),
        # An account made by single sign-on has no password of chatsite's to change.
        "has_password": bool(user and user.is_authenticated and user.has_usable_password()),
    }
