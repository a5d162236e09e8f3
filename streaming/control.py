"""The control plane: every message that crosses the channel layer, typed, in one place.

Two groups per conversation carry them (docs/protocol.md):

- ``conv.<id>``: what every socket of the conversation shows (``chat.*`` events; the
  consumer relays each one as the frame named after the dot);
- ``conv.<id>.control``: requests to the conversation's running answer, wherever it runs
  (``answer.stop``, ``answer.sync``). The channel of the runtime of the process that runs
  the answer is in it (streaming/runtime.py); it replies to a sync on the asking socket's
  own channel.

A third group per user, ``user.<id>``, reaches every socket of one person on every process:
``chat.session_ended`` tells them that a session of theirs ended, or may have
(streaming/sessions.py); ``chat.conversation_changed`` and ``chat.conversation_removed``
keep every tab's list of conversations current (streaming/services/listing.py).

Any of these may be lost (channels-redis drops sends over capacity without a word), so no
guarantee rests on one arriving: `seq`, the database and the clients' checks heal a loss.
How they are sent: streaming/layer.py; what a socket makes of them: streaming/frames.py.
"""

from typing import Any, Literal, TypedDict

from django.urls import reverse

from streaming.models import Message

# --- events to the sockets of a conversation (group ``conv.<id>``) -----------------------


class MessageEvent(TypedDict):
    """A user message was saved."""

    type: Literal["chat.message"]
    message: dict[str, Any]
    #: The conversation's title, which the first message names.
    title: str


class StartEvent(TypedDict):
    """An answer began (its row is `streaming`); it is the end of the branch shown now."""

    type: Literal["chat.start"]
    message_id: str
    #: The user message it answers (services/tree.py).
    parent_id: str | None
    created_at: str
    #: The model asked, and the name of its provider, as the answer records them.
    model: str
    provider_name: str
    #: The answer's text so far and the seq of its last delta: "" and 0 for a new answer;
    #: a continued one's stored text, its deltas numbered on from `seq` + 1.
    seq: int
    text: str


class RetryingEvent(TypedDict):
    """The answer waits before asking the provider again (only ever before its first token).

    Only a notice for people: a lost one costs nothing, and a snapshot does not carry it.
    """

    type: Literal["chat.retrying"]
    message_id: str
    #: Which retry this wait is for: 1, 2, 3…
    attempt: int
    #: Seconds until the request is sent again.
    delay: float
    #: Why, in the site's own words ("Rate limited by the provider"): never the provider's
    #: message or address, which may hold anything.
    reason: str


class DeltaEvent(TypedDict):
    """The next piece of an answer; `seq` counts 1, 2, 3… per answer, without gaps."""

    type: Literal["chat.delta"]
    message_id: str
    seq: int
    text: str


class SyncEvent(TypedDict):
    """An answer's text after delta `after_seq` up to delta `seq`, for one socket."""

    type: Literal["chat.sync"]
    message_id: str
    after_seq: int
    seq: int
    text: str


class DoneEvent(TypedDict):
    """An answer ended and is saved; `message.content` holds its text up to delta `seq`."""

    type: Literal["chat.done"]
    message_id: str
    status: str
    finish_reason: str
    usage: dict[str, int] | None
    error: str
    seq: int
    message: dict[str, Any]


class BranchEvent(TypedDict):
    """The conversation shows another branch now: the one that ends at `leaf_id`."""

    type: Literal["chat.branch"]
    leaf_id: str


class SystemPromptEvent(TypedDict):
    """The conversation's system prompt was changed (it applies from the next answer)."""

    type: Literal["chat.system_prompt"]
    system_prompt: str


class ModelChoice(TypedDict):
    """A conversation's model, as frames carry it (`model`, `snapshot`, `pong`)."""

    #: The provider (a number); None: the site's default provider.
    provider_id: int | None
    #: The model's ID, as the provider's API names it.
    model: str
    #: Still offered: its provider and the model are enabled (the default's always is).
    available: bool


class ModelEvent(TypedDict):
    """The conversation's model was changed (it answers from the next message on)."""

    type: Literal["chat.model"]
    model_choice: ModelChoice


class TitleEvent(TypedDict):
    """The conversation was renamed."""

    type: Literal["chat.title"]
    title: str


class DeletedEvent(TypedDict):
    """The conversation was deleted."""

    type: Literal["chat.deleted"]


class PongEvent(TypedDict):
    """What is stored, for one socket that pinged; it travels through the layer on purpose,
    so that a socket whose layer is down or deaf finds out."""

    type: Literal["chat.pong"]
    title: str
    model_choice: ModelChoice
    #: How many messages are stored (every version).
    count: int
    #: The id and status of the last message of the branch shown (None without messages).
    last_id: str | None
    last_status: str | None


ChatEvent = (
    MessageEvent
    | StartEvent
    | RetryingEvent
    | DeltaEvent
    | SyncEvent
    | DoneEvent
    | BranchEvent
    | SystemPromptEvent
    | ModelEvent
    | TitleEvent
    | DeletedEvent
    | PongEvent
)


# --- events to every socket of a user (group ``user.<id>``) -------------------------------


class SessionEndedEvent(TypedDict):
    """A session of the user ended, or may have: every socket of the user checks its own.

    Not relayed to the browser: each socket decides from its own session whether it ends.
    """

    type: Literal["chat.session_ended"]
    #: What happened: a logout, a change to the user (password, active), or its deletion.
    reason: Literal["logged_out", "user_changed", "user_deleted"]
    #: The fingerprint of the session that surely ended (a logout's), or None.
    session: str | None


class ListedConversation(TypedDict):
    """A conversation as the lists of conversations show it."""

    id: str
    title: str
    #: Its last activity (ISO 8601): lists are ordered by it, newest first, then by id.
    updated_at: str
    #: An answer of it is streaming now.
    answering: bool
    #: The list's heading it falls under: Today, Yesterday, Previous 7 days, Earlier.
    group: str


class ConversationChangedEvent(TypedDict):
    """A conversation of the user was made, renamed, restored, or began or ended an answer:
    every list shows it as it is now (read when the event was sent, so the newest wins)."""

    type: Literal["chat.conversation_changed"]
    conversation: ListedConversation


class ConversationRemovedEvent(TypedDict):
    """A conversation of the user was deleted (or purged): every list drops it."""

    type: Literal["chat.conversation_removed"]
    conversation_id: str


UserEvent = SessionEndedEvent | ConversationChangedEvent | ConversationRemovedEvent


def user_group_name(user_id: object) -> str:
    """The channel-layer group every socket of one user joins, whatever its conversation."""
    return f"user.{user_id}"


# --- requests to a conversation's running answer (group ``conv.<id>.control``) ----------


class StopRequest(TypedDict):
    """End the answer: `cancelled` (a person asked), or silently when it was deleted."""

    type: Literal["answer.stop"]
    conversation_id: str
    #: The answer meant; None: whichever answer of the conversation is streaming.
    message_id: str | None
    reason: Literal["cancelled", "deleted"]


class SyncRequest(TypedDict):
    """Send the text after delta `after_seq` to the channel `reply_channel`."""

    type: Literal["answer.sync"]
    conversation_id: str
    message_id: str
    after_seq: int
    reply_channel: str


ControlRequest = StopRequest | SyncRequest


def serialize_message(message: Message) -> dict[str, Any]:
    """The JSON shape of a message in every frame and in the page's initial data."""
    return {
        "id": str(message.id),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "provider_name": message.provider_name,
        "finish_reason": message.finish_reason,
        "usage": message.usage,
        "error": message.error,
        # Cut off at its length limit with room to grow: the page offers Continue.
        "continuable": message.continuable,
        "client_id": str(message.client_id) if message.client_id else None,
        "created_at": message.created_at.isoformat(),
        # Its files, by id: their bytes only ever come from their URL, to their owner.
        "attachments": [
            {**shown, "url": reverse("streaming:attachment", args=[shown["id"]])}
            for shown in message.attached
        ],
    }


def message_event(message: Message, title: str) -> MessageEvent:
    return {"type": "chat.message", "message": serialize_message(message), "title": title}


def start_event(message: Message) -> StartEvent:
    return {
        "type": "chat.start",
        "message_id": str(message.id),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "created_at": message.created_at.isoformat(),
        "model": message.model,
        "provider_name": message.provider_name,
        "seq": message.seq,
        "text": message.content,
    }


def retrying_event(message_id: object, attempt: int, delay: float, reason: str) -> RetryingEvent:
    return {
        "type": "chat.retrying",
        "message_id": str(message_id),
        "attempt": attempt,
        "delay": round(delay, 2),
        "reason": reason,
    }


def delta_event(message_id: object, seq: int, text: str) -> DeltaEvent:
    return {"type": "chat.delta", "message_id": str(message_id), "seq": seq, "text": text}


def sync_event(message_id: object, after_seq: int, seq: int, text: str) -> SyncEvent:
    return {
        "type": "chat.sync",
        "message_id": str(message_id),
        "after_seq": after_seq,
        "seq": seq,
        "text": text,
    }


def done_event(message: Message) -> DoneEvent:
    """The event for an ended answer, from its saved row."""
    return {
        "type": "chat.done",
        "message_id": str(message.id),
        "status": message.status,
        "finish_reason": message.finish_reason,
        "usage": message.usage,
        "error": message.error,
        "seq": message.seq,
        "message": serialize_message(message),
    }


def branch_event(leaf_id: object) -> BranchEvent:
    return {"type": "chat.branch", "leaf_id": str(leaf_id)}


def system_prompt_event(system_prompt: str) -> SystemPromptEvent:
    return {"type": "chat.system_prompt", "system_prompt": system_prompt}


def model_event(choice: ModelChoice) -> ModelEvent:
    return {"type": "chat.model", "model_choice": choice}


def title_event(title: str) -> TitleEvent:
    return {"type": "chat.title", "title": title}


def deleted_event() -> DeletedEvent:
    return {"type": "chat.deleted"}


def conversation_changed_event(conversation: ListedConversation) -> ConversationChangedEvent:
    return {"type": "chat.conversation_changed", "conversation": conversation}


def conversation_removed_event(conversation_id: object) -> ConversationRemovedEvent:
    return {"type": "chat.conversation_removed", "conversation_id": str(conversation_id)}


def session_ended_event(
    reason: Literal["logged_out", "user_changed", "user_deleted"], session: str | None = None
) -> SessionEndedEvent:
    return {"type": "chat.session_ended", "reason": reason, "session": session}


def stop_request(
    conversation_id: object,
    message_id: object | None,
    reason: Literal["cancelled", "deleted"] = "cancelled",
) -> StopRequest:
    return {
        "type": "answer.stop",
        "conversation_id": str(conversation_id),
        "message_id": None if message_id is None else str(message_id),
        "reason": reason,
    }


def sync_request(
    conversation_id: object, message_id: object, after_seq: int, reply_channel: str
) -> SyncRequest:
    return {
        "type": "answer.sync",
        "conversation_id": str(conversation_id),
        "message_id": str(message_id),
        "after_seq": after_seq,
        "reply_channel": reply_channel,
    }
