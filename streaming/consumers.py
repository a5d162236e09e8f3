"""The chat WebSocket: authenticate, authorise, validate frames, call services, relay events.

Frames are documented in docs/protocol.md.
"""

import json
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from streaming import services
from streaming.exceptions import ChatError, FrameError
from streaming.generation import start_generation
from streaming.models import Conversation

# Close codes: 4xxx is the range RFC 6455 leaves to applications; these mirror HTTP.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class ChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    """One browser tab's socket on one conversation."""

    conversation: Conversation

    async def connect(self) -> None:
        """Join the conversation's group, or close with 4401/4403."""
        user = self.scope["user"]
        # Accept first, then close: a close before accept reaches the browser as a failed
        # handshake with no code, and the page could not tell "log in" from "not yours".
        if not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        conversation = await database_sync_to_async(services.get_conversation_for)(
            user, conversation_id
        )
        if conversation is None:
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.conversation = conversation
        await self.channel_layer.group_add(conversation.group_name, self.channel_name)
        self.groups.append(conversation.group_name)  # so disconnect leaves it
        await self.accept()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Every bad frame gets an error frame; the socket stays open."""
        try:
            if text_data is None:
                raise FrameError("Frames must be JSON text, not binary.", code="bad_json")
            await super().receive(text_data=text_data, **kwargs)
        except ChatError as exc:
            await self.send_json(exc.as_frame())

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            raise FrameError("Frames must be JSON objects.", code="bad_json") from None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Route a client frame by its `type`."""
        if not isinstance(content, dict):
            raise FrameError("Frames must be JSON objects.", code="bad_json")
        handlers = {"user_message": self.user_message}
        handler = handlers.get(content.get("type"))  # type: ignore[arg-type]
        if handler is None:
            raise FrameError(f"Unknown frame type {content.get('type')!r}.", code="unknown_type")
        await handler(content)

    async def user_message(self, frame: dict[str, Any]) -> None:
        """Save the user's message and start the answer (or recognise a resend)."""
        content = services.validate_content(frame.get("content"))
        try:
            client_id = uuid.UUID(str(frame.get("client_id")))
        except ValueError:
            raise FrameError("client_id must be a UUID.", code="bad_client_id") from None
        posted = await database_sync_to_async(services.do_post_user_message)(
            self.conversation, content, client_id
        )
        if posted.assistant_message is None:
            # A resend of a message already saved: tell this socket, start nothing.
            await self.send_json(
                {"type": "message", "message": services.serialize_message(posted.user_message)}
            )
            return
        messages = await database_sync_to_async(services.request_messages)(
            self.conversation, before=posted.assistant_message
        )
        start_generation(self.conversation, posted.assistant_message, messages)

    # --- group events, relayed to the browser -----------------------------------------

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "message", "message": event["message"]})

    async def chat_start(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "start", "message_id": event["message_id"]})

    async def chat_delta(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "delta",
                "message_id": event["message_id"],
                "seq": event["seq"],
                "text": event["text"],
            }
        )

    async def chat_done(self, event: dict[str, Any]) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "done"})
