"""Login throttling's two project-specific parts, which django-axes calls by name.

Whose address a login comes from, and the page that says logging in is paused and until
when. The rules themselves (limit, cool-off, what locks) are settings: see the Security
section of chatsite/settings.py.
"""

import ipaddress
import logging
from datetime import datetime, timedelta
from typing import Any

from axes.helpers import (
    get_client_parameters,
    get_client_username,
    get_cool_off,
    get_failure_limit,
)
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the socket's, or the trusted proxy's header when one is set.

    A header may list several addresses (X-Forwarded-For): the right-most is the one the
    proxy itself saw; those before it are whatever the client wrote.
    """
    if settings.CLIENT_IP_META_KEY:
        given = request.META.get(settings.CLIENT_IP_META_KEY, "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(given))
        except ValueError:
            logger.warning(
                "CLIENT_IP_HEADER %s holds no address (%r): using the socket's address.",
                settings.CLIENT_IP_HEADER,
                given,
            )
    address: str | None = request.META.get("REMOTE_ADDR")
    return address


def locked_until(request: HttpRequest) -> datetime:
    """When the lockout this login ran into ends, by the failures axes counts for it.

    Failures leave the count a cool-off after they happened, newest last; the lockout ends
    when the failure that brought the newest ones up to the limit leaves. The account and
    the address each count on their own, so the later end of the two is the one that holds.
    """
    now = getattr(request, "axes_attempt_time", None) or timezone.now()
    cool_off = get_cool_off(request) or settings.AXES_COOLOFF_TIME
    limit = get_failure_limit(request, None)
    ends = []
    for lookup in get_client_parameters(
        get_client_username(request),
        getattr(request, "axes_ip_address", None) or client_ip(request),
        getattr(request, "axes_user_agent", ""),
        request,
    ):
        counted = 0
        recent = AccessAttempt.objects.filter(**lookup, attempt_time__gte=now - cool_off)
        for attempt in recent.order_by("-attempt_time"):
            counted += attempt.failures_since_start
            if counted >= limit:
                ends.append(attempt.attempt_time + cool_off)
                break
    return max(ends, default=now + cool_off)


def whole_minute_after(moment: datetime) -> datetime:
    """``moment`` rounded up to the minute: a page saying "until 14:32" must mean it."""
    rounded = moment.replace(second=0, microsecond=0)
    return rounded if rounded == moment else rounded + timedelta(minutes=1)


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The login page again, with status 429, saying logging in is paused and until when.

    axes passes the view's response and the credentials too (in an order that differs
    between its sync and async paths); the request has everything this page needs.
    """
    view = LoginView()
    view.setup(request)
    form = AuthenticationForm(request, initial={"username": get_client_username(request)})
    until = whole_minute_after(locked_until(request))
    context = view.get_context_data(form=form, locked_until=until)
    return render(
        request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE
    )
