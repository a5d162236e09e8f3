"""The chat WebSocket: authenticate, authorise, validate frames, call services, relay events.

Frames are documented in docs/protocol.md.
"""

import contextlib
import json
import logging
import uuid
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from redis.exceptions import RedisError

from streaming import services
from streaming.exceptions import ChatError, FrameError, LayerUnavailable
from streaming.generation import ensure_sweeper, registry, start_generation
from streaming.models import Conversation, Message

logger = logging.getLogger(__name__)

# Close codes: 4xxx is the range RFC 6455 leaves to applications; these mirror HTTP.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# Like HTTP 503: the browser reconnects with backoff. (RFC 6455's own 1013 is refused by
# daphne's WebSocket library, which lets servers send only 1000 and 3000-4999.)
CLOSE_UNAVAILABLE = 4503


class ChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    """One browser tab's socket on one conversation."""

    conversation: Conversation
    accepted = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Turn a lost channel layer (Redis down) into "try again later", not a crash."""
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, ConnectionError) as exc:
            logger.error("Channel layer unavailable, socket closed with 4503: %r", exc)
            error = LayerUnavailable(
                "Live updates are unavailable right now. Retrying shortly…"
            ).as_frame()
            with contextlib.suppress(Exception):  # the socket may be gone already
                if not self.accepted:
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": json.dumps(error)})
                await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})

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
        conversation = await services.to_async(services.get_conversation_for)(user, conversation_id)
        if conversation is None:
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.conversation = conversation
        await self.accept()
        # Join before reading the snapshot, so nothing falls between the two.
        await self.channel_layer.group_add(conversation.group_name, self.channel_name)
        self.groups.append(conversation.group_name)  # so disconnect leaves it
        ensure_sweeper()
        snapshot = await services.to_async(services.snapshot)(conversation)
        await self.send_json(snapshot)
        if snapshot["active"] is not None:
            # Ask the generation, wherever it runs, for what came after the checkpoint.
            await self._request_sync(snapshot["active"]["message_id"], snapshot["active"]["seq"])

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

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
        handlers = {
            "user_message": self.user_message,
            "stop": self.stop,
            "sync": self.sync,
            "retry": self.retry,
        }
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
        posted = await services.to_async(services.do_post_user_message)(
            self.conversation, content, client_id
        )
        if posted.assistant_message is None:
            # A resend of a message already saved: tell this socket, start nothing.
            await self.send_json(
                {"type": "message", "message": services.serialize_message(posted.user_message)}
            )
            return
        await self._generate(posted.assistant_message)

    async def retry(self, frame: dict[str, Any]) -> None:
        """Answer the last user message again, in a new assistant message."""
        answer = await services.to_async(services.do_retry)(
            self.conversation, frame.get("message_id")
        )
        await self._generate(answer)

    async def _generate(self, answer: Message) -> None:
        messages = await services.to_async(services.request_messages)(
            self.conversation, before=answer
        )
        await start_generation(self.conversation, answer, messages)

    async def stop(self, frame: dict[str, Any]) -> None:
        """Stop the conversation's answer, on whichever process generates it."""
        local = [g for g in registry.values() if g.group == self.conversation.group_name]
        for generation in local:
            generation.stop()
        if not local:
            await self.channel_layer.group_send(
                self.conversation.control_group, {"type": "generation.stop"}
            )

    async def sync(self, frame: dict[str, Any]) -> None:
        """Resend an answer's text after ``after_seq`` (the client saw a gap)."""
        after_seq = frame.get("after_seq")
        if not isinstance(after_seq, int) or isinstance(after_seq, bool) or after_seq < 0:
            raise FrameError("after_seq must be a whole number, 0 or more.", code="bad_sync")
        message = await services.to_async(services.get_message_in)(
            self.conversation, frame.get("message_id")
        )
        if message is None:
            raise FrameError("No such message in this conversation.", code="bad_sync")
        if message.status != Message.Status.STREAMING:
            # It ended, and this socket missed the `done`: the saved message is the answer.
            await self.chat_done(services.done_event(message))
            return
        await self._request_sync(str(message.id), after_seq)

    async def _request_sync(self, message_id: str, after_seq: int) -> None:
        await self.channel_layer.group_send(
            self.conversation.control_group,
            {
                "type": "generation.sync",
                "message_id": message_id,
                "after_seq": after_seq,
                "reply_channel": self.channel_name,
            },
        )

    # --- group events, relayed to the browser -----------------------------------------

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "message", "message": event["message"], "title": event["title"]}
        )

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

    async def chat_sync(self, event: dict[str, Any]) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "sync"})

    async def chat_done(self, event: dict[str, Any]) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "done"})
