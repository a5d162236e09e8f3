"""The chat WebSocket: authenticate, authorise, validate frames, call services, relay events.

Frames are documented in docs/protocol.md.
"""

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from streaming import control, frames, layer, metrics, runtime, text
from streaming.exceptions import (
    ChatError,
    ConversationGone,
    ErrorCode,
    FrameError,
    LayerUnavailable,
    LimitError,
    ServerError,
    SessionEnded,
)
from streaming.frame_fields import claimed_type, echo, optional_uuid, query_value, uuid_field
from streaming.frames import Close
from streaming.limits import FrameBudget, SocketSlot
from streaming.models import Conversation, Message
from streaming.services import (
    continuation,
    conversations,
    providers,
    snapshots,
    stops,
    window,
)
from streaming.services.database import to_async
from streaming.sessions import SocketSession

logger = logging.getLogger(__name__)

#: The frames a page may send, each handled by the consumer's method of the same name.
CLIENT_FRAMES = frozenset(get_args(frames.ClientFrame))

UNAVAILABLE_MESSAGE = "Live updates are unavailable right now. Retrying shortly…"
SERVER_ERROR_MESSAGE = "Something went wrong on the server with that request. Try again."
# The highest `seq` an answer can reach: Message.seq is a PositiveIntegerField.
MAX_SEQ = 2**31 - 1


class ChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    """One browser tab's socket on one conversation."""

    conversation: Conversation
    accepted = False
    slot: SocketSlot | None = None
    budget: FrameBudget
    #: The login session the socket was opened with (None until it is accepted as logged in).
    session: SocketSession | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Turn a lost channel layer (Redis down) into "try again later", not a crash."""
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, ConnectionError, LayerUnavailable) as exc:
            # disconnect() will not run: let the session timer and the socket's place go.
            await self._let_go()
            logger.error("Channel layer unavailable, socket closed with 4503: %r", exc)
            error = frames.error_frame(LayerUnavailable(UNAVAILABLE_MESSAGE))
            with contextlib.suppress(Exception):  # the socket may be gone already
                if not self.accepted:
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": json.dumps(error)})
                await send({"type": "websocket.close", "code": Close.UNAVAILABLE.value})
        finally:
            if self.accepted:  # this runs once, when the socket's life ends however it ends
                metrics.socket_closed()

    async def dispatch(self, message: Any) -> None:
        """Hand ``message`` to its handler; once the socket's session ended, nothing more is
        relayed or handled but the close.

        Not channels' own dispatch, which first hops to Django's one thread for sync code to
        close its old database connections, for every message: for every delta of every
        socket, all queued behind one thread. This consumer's database work runs through
        ``to_async``, whose threads close their old connections around each call.
        """
        ended = self.session is not None and self.session.ended is not None
        if ended and message["type"] != "websocket.disconnect":
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        """Join the conversation's and the user's groups, or close with 4401/4403."""
        user = self.scope["user"]
        # Accept first, then close: a close before accept reaches the browser as a failed
        # handshake with no code, and the page could not tell "log in" from "not yours".
        if not user.is_authenticated:
            await self.accept()
            await self.close(code=Close.UNAUTHENTICATED.value)
            return
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        conversation = await to_async(conversations.get_conversation_for)(user, conversation_id)
        if conversation is None:
            await self.accept()
            await self.close(code=Close.FORBIDDEN.value)
            return
        self.conversation = conversation
        await self.accept()
        slot = SocketSlot(user.pk, self.channel_name)
        try:
            await slot.take()
        except LimitError as exc:
            await self.send_json(frames.error_frame(exc))
            await self.close(code=Close.TOO_MANY.value)
            return
        self.slot = slot
        slot.keep()
        self.budget = FrameBudget()
        # Join before reading the snapshot, so nothing falls between the two.
        await self.channel_layer.group_add(conversation.group_name, self.channel_name)
        self.groups.append(conversation.group_name)  # so disconnect leaves it
        # The user's group: their sessions' endings (sessions.py), their list's changes.
        self.session = SocketSession(self.scope["session"].session_key, user.pk, self.end_session)
        await self.channel_layer.group_add(control.user_group_name(user.pk), self.channel_name)
        self.groups.append(control.user_group_name(user.pk))
        # Checked (its expiry learnt) before the snapshot, so later checks follow it in order.
        if not await self.session.holds():
            return
        try:
            # Opened away from the branch's end: a window around its reader (docs/protocol.md).
            await self.resync({"around": query_value(self.scope, "around")})
        except ConversationGone:
            await self.close(code=Close.FORBIDDEN.value)  # deleted in between: as if never there
            return
        self.session.watch()

    async def disconnect(self, code: int) -> None:
        await self._let_go()

    async def _let_go(self) -> None:
        """Stop the session's timer and give up the socket's place (once; never raises)."""
        if self.session is not None:
            self.session.stop()
        slot, self.slot = self.slot, None
        if slot is not None:
            await slot.release()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True
        metrics.socket_opened()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Every bad frame gets an error frame; the socket stays open (unless it was deleted).

        Each kind of bad input has its own code (docs/protocol.md); anything else that
        fails is a bug, answered with `server_error` and logged, and the socket stays open.
        """
        if self.session is None:
            return  # refused at connect (4401/4403/4429) and closing: nothing here to serve
        try:
            # Every frame counts, read or not: a flood of bad ones costs no parsing either.
            self.budget.spend()
        except LimitError as exc:
            # Named, so the page knows which of its requests was refused.
            await self.send_json(frames.error_frame(exc, frame=claimed_type(text_data)))
            return
        try:
            if text_data is None:
                raise FrameError("Frames must be JSON text, not binary.", code=ErrorCode.BAD_JSON)
            # Refused unread: parsing a huge frame costs the server, not the sender.
            text.check_length(
                text_data, settings.MAX_FRAME_CHARS, what="The frame", code=ErrorCode.FRAME_TOO_LONG
            )
            await self.receive_json(await self.decode_json(text_data), **kwargs)
        except ConversationGone:
            await self.chat_deleted(control.deleted_event())
        except (LayerUnavailable, RedisError, ConnectionError):
            raise  # closes the socket with 4503 (see __call__): the page reconnects
        except ChatError as exc:
            await self.send_json(frames.error_frame(exc))
        except Exception:
            logger.exception("A frame on %s failed; the socket stays open.", self.scope["path"])
            await self.send_json(frames.error_frame(ServerError(SERVER_ERROR_MESSAGE)))

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            raise FrameError("Frames must be JSON objects.", code=ErrorCode.BAD_JSON) from None
        except RecursionError:  # brackets nested deeper than the parser goes
            raise FrameError("The frame is nested too deeply.", code=ErrorCode.BAD_JSON) from None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Route a client frame by its `type` to the method of that name."""
        if not isinstance(content, dict):
            raise FrameError("Frames must be JSON objects.", code=ErrorCode.BAD_JSON)
        frame_type = content.get("type")
        if not isinstance(frame_type, str):
            raise FrameError(
                'A frame\'s "type" must be text, such as "ping".', code=ErrorCode.UNKNOWN_TYPE
            )
        if frame_type not in CLIENT_FRAMES:
            raise FrameError(
                f"Unknown frame type {echo(frame_type)!r}.", code=ErrorCode.UNKNOWN_TYPE
            )
        # Each frame type has the handler of its own name (user_message → self.user_message).
        handler: Callable[[dict[str, Any]], Awaitable[None]] = getattr(self, frame_type)
        # Every frame that would do something first checks that the session that opened the
        # socket still holds (after the frame budget: a flood costs no database work).
        assert self.session is not None
        if not await self.session.holds():
            return
        try:
            await handler(content)
        except LimitError as exc:
            await self.send_json(frames.error_frame(exc, frame=frame_type))

    async def user_message(self, frame: dict[str, Any]) -> None:
        """Save the user's message and start the answer (or recognise a resend).

        `parent_id` is the answer it follows (null: the first turn); without it, the message
        follows the branch shown. `attachments` are the ids of the files it carries.
        """
        files = frame.get("attachments")
        content = text.validate_content(frame.get("content"), empty_ok=bool(files))
        client_id = uuid_field(frame, "client_id", code=ErrorCode.BAD_CLIENT_ID)
        parent_id: conversations.Follows = conversations.BRANCH_END
        if "parent_id" in frame:
            parent_id = None
            if frame["parent_id"] is not None:
                parent_id = uuid_field(frame, "parent_id", code=ErrorCode.BAD_PARENT)
        posted = await runtime.begin(
            conversations.do_post_user_message,
            self.conversation,
            content,
            client_id,
            parent_id,
            files,
        )
        if isinstance(posted, conversations.Resent):
            # A message saved already: tell this socket again, and start nothing.
            event = control.message_event(posted.user_message, self.conversation.title)
            await self.send_json(frames.to_frame(event))

    async def retry(self, frame: dict[str, Any]) -> None:
        """Regenerate an answer: a new version of it, answering the same user message."""
        message_id = uuid_field(frame, "message_id", code=ErrorCode.BAD_RETRY)
        client_id = optional_uuid(frame, "client_id", code=ErrorCode.BAD_RETRY)
        await runtime.begin(conversations.do_regenerate, self.conversation, message_id, client_id)

    async def continue_answer(self, frame: dict[str, Any]) -> None:
        """Continue an answer cut off at its length limit: more of the same answer streams."""
        message_id = uuid_field(frame, "message_id", code=ErrorCode.BAD_CONTINUE)
        await runtime.begin(continuation.do_continue, self.conversation, message_id)

    async def set_system_prompt(self, frame: dict[str, Any]) -> None:
        """Change the system prompt (from the next answer on); every tab is told."""
        await to_async(conversations.do_set_system_prompt)(
            self.conversation, frame.get("system_prompt")
        )

    async def set_model(self, frame: dict[str, Any]) -> None:
        """Choose the model of the next answers, from those offered; every tab is told."""
        await to_async(providers.do_set_model)(
            self.conversation, frame.get("provider_id"), frame.get("model")
        )

    async def rename(self, frame: dict[str, Any]) -> None:
        """Give the conversation a title of the user's own; every tab is told."""
        await to_async(conversations.do_rename)(self.conversation, frame.get("title"))

    async def switch(self, frame: dict[str, Any]) -> None:
        """Show another version of a message: every tab gets the branch through it."""
        message_id = uuid_field(frame, "message_id", code=ErrorCode.BAD_SWITCH)
        await to_async(conversations.do_switch_branch)(self.conversation, message_id)

    async def stop(self, frame: dict[str, Any]) -> None:
        """Stop the conversation's answer (or ``message_id``, or the answer to what the page
        sent as ``client_id``, saved yet or not), on whichever process runs it.

        The database flag reaches the answer within a checkpoint whatever happens to the
        channel layer; the request over the layer is the fast path.
        """
        message_id = optional_uuid(frame, "message_id", code=ErrorCode.BAD_STOP)
        client_id = optional_uuid(frame, "client_id", code=ErrorCode.BAD_STOP)
        if client_id is None:
            stopping = await to_async(stops.do_request_stop)(self.conversation.id, message_id)
        elif message_id is None:
            stopping = await to_async(stops.do_stop_sent)(self.conversation, client_id)
        else:
            raise FrameError(
                "A stop names message_id or client_id, not both.", code=ErrorCode.BAD_STOP
            )
        for answer_id in stopping:
            await self._ask(control.stop_request(self.conversation.id, answer_id))

    async def resync(self, frame: dict[str, Any]) -> None:
        """Send a fresh snapshot (around ``around`` if it is a message of the branch shown;
        never refused), then ask the running answer for what follows it."""
        snapshot = await to_async(snapshots.snapshot)(self.conversation, frame.get("around"))
        await self.send_json(snapshot)
        if snapshot["active"] is not None:
            # Ask the answer, wherever it runs, for what came after the checkpoint.
            await self._request_sync(snapshot["active"]["message_id"], snapshot["active"]["seq"])

    async def history(self, frame: dict[str, Any]) -> None:
        """Send the messages above ``before`` on its branch, or below ``after`` on the branch
        shown: a window, and the versions of each."""
        if "after" not in frame:
            before = uuid_field(frame, "before", code=ErrorCode.BAD_HISTORY)
            await self.send_json(await to_async(window.history)(self.conversation, before))
            return
        if "before" in frame:
            raise FrameError("Ask for before or after, not both.", code=ErrorCode.BAD_HISTORY)
        after = uuid_field(frame, "after", code=ErrorCode.BAD_HISTORY)
        newer = await to_async(window.newer)(self.conversation, after)
        await self.send_json(newer)
        if "active" in newer:  # as after a snapshot: the text after its checkpoint
            await self._request_sync(newer["active"]["message_id"], newer["active"]["seq"])

    async def ping(self, frame: dict[str, Any]) -> None:
        """Describe the stored conversation, so the page can tell whether it missed a frame.

        The reply goes through the channel layer to this socket's own channel: a page whose
        layer is down hears that (4503) rather than being answered as if all were well.
        """
        pong = await to_async(window.digest)(self.conversation.id)
        if not await layer.send_to_channel(self.channel_name, pong):
            raise LayerUnavailable(UNAVAILABLE_MESSAGE)

    async def sync(self, frame: dict[str, Any]) -> None:
        """Resend an answer's text after ``after_seq`` (the client saw a gap)."""
        after_seq = frame.get("after_seq")
        if (
            not isinstance(after_seq, int)
            or isinstance(after_seq, bool)
            or not 0 <= after_seq <= MAX_SEQ
        ):
            raise FrameError(
                f"after_seq must be a whole number from 0 to {MAX_SEQ}.", code=ErrorCode.BAD_SYNC
            )
        message_id = uuid_field(frame, "message_id", code=ErrorCode.BAD_SYNC)
        message = await to_async(conversations.get_message_in)(self.conversation, message_id)
        if message is None:
            raise FrameError("No such message in this conversation.", code=ErrorCode.BAD_SYNC)
        if message.status != Message.Status.STREAMING:
            # It ended, and this socket missed the `done`: the saved message is the answer.
            await self.chat_done(control.done_event(message))
            return
        await self._request_sync(str(message.id), after_seq)

    async def _request_sync(self, message_id: str, after_seq: int) -> None:
        conversation_id = self.conversation.id
        request = control.sync_request(conversation_id, message_id, after_seq, self.channel_name)
        await self._ask(request)

    async def _ask(self, request: control.ControlRequest) -> None:
        if not await layer.send(layer.to_answer(request)):
            raise LayerUnavailable(UNAVAILABLE_MESSAGE)

    async def send_json(self, content: Any, close: bool = False) -> None:
        """Send a frame, in parts if it is longer than ``FRAME_BUDGET_BYTES``
        (frames.wire_texts); one for a socket whose close has begun is dropped without a fuss.

        The page left (or this server closed the socket) while a group event or a reply
        was on its way, and daphne's WebSocket library refuses frames after a close. The
        page's next socket starts from a snapshot, so nothing is lost.
        """
        try:
            for text_data in frames.wire_texts(content, settings.FRAME_BUDGET_BYTES):
                await self.send(text_data=text_data)
            if close:
                await self.close()
        except Disconnected:
            logger.debug("Dropped a frame for a closing socket on %s.", self.scope["path"])

    # --- group events, relayed to the browser (docs/protocol.md) -------------------------

    async def chat_message(self, event: control.MessageEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_start(self, event: control.StartEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_retrying(self, event: control.RetryingEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_delta(self, event: control.DeltaEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_sync(self, event: control.SyncEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_done(self, event: control.DoneEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_branch(self, event: control.BranchEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_system_prompt(self, event: control.SystemPromptEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_model(self, event: control.ModelEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_title(self, event: control.TitleEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_conversation_changed(self, event: control.ConversationChangedEvent) -> None:
        """Another conversation of the user changed: the page's list shows it as it is now.

        Not this socket's own: its own frames (`title`, `start`, `done`, `deleted`) say that.
        """
        if event["conversation"]["id"] != str(self.conversation.id):
            await self.send_json(frames.to_frame(event))

    async def chat_conversation_removed(self, event: control.ConversationRemovedEvent) -> None:
        if event["conversation_id"] != str(self.conversation.id):
            await self.send_json(frames.to_frame(event))

    async def chat_pong(self, event: control.PongEvent) -> None:
        await self.send_json(frames.to_frame(event))

    async def chat_session_ended(self, event: control.SessionEndedEvent) -> None:
        """A session of this user ended, or may have: close if it was this socket's."""
        if self.session is not None:
            await self.session.on_event(event)

    async def end_session(self, error: SessionEnded) -> None:
        """This socket's session ended: say why, and close (4401)."""
        await self.send_json(frames.error_frame(error))
        await self.close(code=Close.UNAUTHENTICATED.value)

    async def chat_deleted(self, event: control.DeletedEvent) -> None:
        """The conversation is gone: say so, and close for good (4404)."""
        frame = frames.to_frame(event) | {"message": "This conversation was deleted."}
        await self.send_json(frame)
        await self.close(code=Close.DELETED.value)
