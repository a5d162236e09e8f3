"""ASGI entry point: HTTP through Django, WebSockets through the streaming app's router."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from chatsite.daphne import log_loop  # noqa: E402
from streaming import runtime  # noqa: E402
from streaming.logs import route_daphne_access_log  # noqa: E402
from streaming.origins import SiteOriginValidator  # noqa: E402
from streaming.routing import websocket_urlpatterns  # noqa: E402

http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Only the site's own pages may open a socket (scheme, host and port, as Django's
        # CSRF check compares them): cookies go with a handshake from any page.
        "websocket": SiteOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# The answers' runtime (checkpoints, sweep, graceful shutdown) starts with the server.
runtime.start_with_server()
# Said once, now that logging is set up: the loop was chosen before daphne loaded.
log_loop()

if settings.LOG_FORMAT == "json":
    # daphne writes its access log as plain lines of its own: in JSON mode, records instead.
    route_daphne_access_log()
