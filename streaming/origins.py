"""WebSocket handshakes only from the site's own pages: the Origin rule of Django's CSRF check.

A browser sends its cookies with a WebSocket handshake whatever page opens it, so without
this check any page, on any other origin, could open a socket as the logged-in user and
read and write their chats. The rule is the one Django's CsrfViewMiddleware applies to the
Origin of a form post: the Origin must be the site itself, scheme, host and port, as the
request reached this server, or be listed in CSRF_TRUSTED_ORIGINS (where
``https://*.example.com`` allows subdomains). The Host must be in ALLOWED_HOSTS either way.
A missing Origin is refused, and so is ``null`` (what sandboxed frames and local files send).
"""

import logging
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)

# The longest header value quoted in a log line: the rest is noise, or an attack on the log.
_LOGGED_CHARS = 100


class SiteOriginValidator:
    """ASGI middleware: a WebSocket handshake from any other origin is closed before accept.

    Closing before accept makes daphne answer the handshake with HTTP 403.
    """

    def __init__(self, application: Any) -> None:
        self.application = application
        self.denier = WebsocketDenier.as_asgi()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            meta = request_meta(scope)
            logger.warning(
                "WebSocket refused: origin %r is not this site (host %r).",
                meta.get("HTTP_ORIGIN", "")[:_LOGGED_CHARS],
                meta.get("HTTP_HOST", "")[:_LOGGED_CHARS],
            )
            return await self.denier(scope, receive, send)
        return await self.application(scope, receive, send)


def origin_allowed(scope: Any) -> bool:
    """Whether the handshake's Origin is the site itself or a trusted origin."""
    meta = request_meta(scope)
    origin = meta.get("HTTP_ORIGIN")
    if origin is None or origin == "null":
        return False
    own = site_origin(scope, meta)
    if own is None:
        return False  # a Host the site does not serve: refused, as Django refuses it
    return origin == own or _trusted(origin)


def request_meta(scope: Any) -> dict[str, str]:
    """The handshake's headers as Django's ``request.META`` names them (``HTTP_ORIGIN``…).

    Built as Django's ASGIRequest builds META: names with underscores are dropped (so
    ``x_forwarded_proto`` cannot pose as ``x-forwarded-proto``), repeats joined with commas.
    """
    headers: defaultdict[str, list[str]] = defaultdict(list)
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin1")
        if "_" not in name:
            headers["HTTP_" + name.upper().replace("-", "_")].append(raw_value.decode("latin1"))
    return {name: ",".join(values) for name, values in headers.items()}


def site_origin(scope: Any, meta: dict[str, str]) -> str | None:
    """``scheme://host[:port]`` of the site as this handshake reached it; None for a bad Host.

    The same as Django's ``request.get_host()`` and ``request.scheme``: the Host header (or
    X-Forwarded-Host with USE_X_FORWARDED_HOST) checked against ALLOWED_HOSTS, and the
    scheme of the connection (ws → http, wss → https) unless SECURE_PROXY_SSL_HEADER names
    a header the TLS-terminating proxy set.
    """
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in meta:
        host = meta["HTTP_X_FORWARDED_HOST"]
    elif "HTTP_HOST" in meta:
        host = meta["HTTP_HOST"]
    else:
        return None  # a WebSocket handshake always has a Host
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's get_host()
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, allowed_hosts):
        return None
    return f"{_scheme(scope, meta)}://{host}"


def _scheme(scope: Any, meta: dict[str, str]) -> str:
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        try:
            header, secure_value = proxy_header
        except ValueError:
            raise ImproperlyConfigured(
                "The SECURE_PROXY_SSL_HEADER setting must be a tuple containing two values."
            ) from None
        value = meta.get(header)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in {"wss", "https"} else "http"


def _trusted(origin: str) -> bool:
    """Whether CSRF_TRUSTED_ORIGINS lists ``origin``, exactly or by a ``*.`` wildcard."""
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in (entry for entry in trusted if "*" not in entry):
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, pattern.netloc.lstrip("*"))
        for pattern in (urlsplit(entry) for entry in trusted if "*" in entry)
        if pattern.scheme == parsed.scheme
    )
