"""Template context every page needs."""

from django.conf import settings
from django.http import HttpRequest


def model_info(request: HttpRequest) -> dict[str, object]:
    """Which model answers, and whether it is the built-in simulator (the UI says so)."""
    return {"default_model": settings.OPENAI_MODEL, "model_simulated": settings.OPENAI_SIMULATED}
