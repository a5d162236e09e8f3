"""When a failed request to the model API is asked again, how soon, and why in the page's
words: the policy an answer's reader follows (``answer.Answer``)."""

import random

from django.conf import settings

from streaming.exceptions import UpstreamConnectError, UpstreamError, UpstreamHTTPError

# The first backoff before a retry; each next one doubles, with jitter.
_BASE_SECONDS = 0.5
_RETRYABLE_STATUSES = {408, 409, 429}
# Why an answer waits to retry, as the page says it: our words, never the provider's.
_REASONS = {
    408: "The provider timed out (408)",
    409: "The provider reported a conflict (409)",
    429: "Rate limited by the provider",
    503: "The provider is unavailable (503)",
}
_UNREACHABLE = "Could not reach the provider"


def delay(exc: UpstreamError, attempt: int, *, got_text: bool) -> float | None:
    """Seconds to wait before trying again after failed ``attempt`` (from 0), or None when
    the answer must not retry."""
    if got_text or attempt >= settings.OPENAI_MAX_RETRIES:
        return None  # never after text: users would see the answer start twice
    if isinstance(exc, UpstreamHTTPError):
        if exc.status_code not in _RETRYABLE_STATUSES and exc.status_code < 500:
            return None
    elif not isinstance(exc, UpstreamConnectError):
        return None
    backoff = _BASE_SECONDS * 2**attempt
    wait = backoff / 2 + random.uniform(0, backoff / 2)
    retry_after = exc.retry_after if isinstance(exc, UpstreamHTTPError) else None
    if retry_after is not None:
        if retry_after > settings.OPENAI_RETRY_MAX_SECONDS:
            return None  # retrying sooner than asked would only be refused again
        wait = max(wait, retry_after)
    return float(min(wait, settings.OPENAI_RETRY_MAX_SECONDS))


def reason(exc: UpstreamError) -> str:
    """Why an answer waits to retry after ``exc``, in words fit for the page.

    Made by us from the kind of failure alone: the provider's message and address never go
    into it, so nothing a provider or a proxy writes reaches every tab through it.
    """
    if isinstance(exc, UpstreamHTTPError):
        status = exc.status_code
        return _REASONS.get(status, f"The provider had an error ({status})")
    return _UNREACHABLE
