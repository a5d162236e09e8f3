"""WebSocket URLs."""

from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from streaming.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/conversations/<uuid:conversation_id>/", ChatConsumer.as_asgi()),
    # Any other path is refused at the handshake (HTTP 403), not left to the router, whose
    # "no route found" error fails the handshake with a 500 and a traceback in the log.
    re_path(r"", WebsocketDenier.as_asgi()),
]
