"""What crosses the WebSocket: the frames a page may send, the frames it receives, and the
codes a socket is closed with (docs/protocol.md).

Most frames a page receives are group events (streaming/control.py) relayed as they are,
named after the dot (``chat.delta`` is a `delta` frame); the others are the snapshot and
errors, typed here. The page's copy of these words is generated from this module and
streaming/exceptions.py (``make protocol``).
"""

import enum
import json
from collections.abc import Iterator
from typing import Any, Literal, NotRequired, TypedDict, get_args

from streaming.control import (
    ChatEvent,
    ConversationChangedEvent,
    ConversationRemovedEvent,
    ModelChoice,
)
from streaming.exceptions import ChatError, LimitError, SessionEnded


class Close(enum.IntEnum):
    """Why the server closed a socket: 4xxx, the range RFC 6455 leaves to applications,
    each mirroring an HTTP status. (RFC 6455's own 1013 is refused by daphne's WebSocket
    library, which lets servers send only 1000 and 3000-4999.)

    Sent as ``code.value``: that library accepts a plain int only.
    """

    #: Not logged in, or the socket's session ended: the page checks whether it still is.
    UNAUTHENTICATED = 4401
    #: Not the user's conversation (or none such): nothing to reconnect to.
    FORBIDDEN = 4403
    #: The conversation was deleted.
    DELETED = 4404
    #: The user has all the sockets they may hold open.
    TOO_MANY = 4429
    #: The channel layer (Redis) cannot be reached: the page reconnects with backoff.
    UNAVAILABLE = 4503


#: Every frame a page may send (docs/protocol.md); the consumer has one handler for each.
ClientFrame = Literal[
    "user_message",
    "stop",
    "sync",
    "retry",
    "continue_answer",
    "switch",
    "set_system_prompt",
    "set_model",
    "rename",
    "resync",
    "ping",
    "history",
]


#: The group events a socket relays to its page, as the frame named after the dot.
PageEvent = ChatEvent | ConversationChangedEvent | ConversationRemovedEvent


def to_frame(event: PageEvent) -> dict[str, Any]:
    """The frame a socket sends for a group event: ``chat.delta`` becomes ``delta``."""
    frame: dict[str, Any] = dict(event)
    frame["type"] = event["type"].removeprefix("chat.")
    return frame


class ActiveAnswer(TypedDict):
    """The answer streaming in a snapshot, as far as its row holds it."""

    message_id: str
    #: The seq of the last delta in `text`: later deltas follow from `seq` + 1.
    seq: int
    text: str


class VersionStub(TypedDict):
    """Another version of a message a frame carries, without its text: enough for the page
    to say "version 2 of 3" and to `switch` to it (services/window.py)."""

    id: str
    parent_id: str | None
    role: str
    status: str
    created_at: str


class SnapshotFrame(TypedDict):
    """The conversation as it stands, a window of it: the first frame of every socket, and
    the answer to `resync`."""

    type: Literal["snapshot"]
    title: str
    system_prompt: str
    model_choice: ModelChoice
    #: The newest messages of the branch shown (``serialize_message``), oldest first, and
    #: the streaming answer's wherever it is (services/window.py).
    messages: list[dict[str, Any]]
    #: The other versions of those messages, without their text.
    versions: list[VersionStub]
    #: How many messages are stored, every version: as the `pong` counts them.
    count: int
    #: The last message of the branch shown (None without messages).
    leaf_id: str | None
    #: The window's last message when it does not reach `leaf_id` (a window around a
    #: message the page asked for): the newer messages below it come with `history` `after`.
    #: None when the window holds the branch's end.
    window_end: str | None
    active: ActiveAnswer | None


class HistoryFrame(TypedDict):
    """The answer to `history`: the messages above `before` on its branch, or below `after`
    on the branch shown, a window of them (services/window.py), oldest first, with the
    other versions of each as stubs."""

    type: Literal["history"]
    #: What the page asked about: one of the two.
    before: NotRequired[str]
    after: NotRequired[str]
    messages: list[dict[str, Any]]
    versions: list[VersionStub]
    #: The window reaches the conversation's first turn (`before`), or the end of the
    #: branch shown (`after`): there is nothing more that way to ask for.
    complete: bool
    #: `after`: the streaming answer's text up to a seq, when it is among `messages`.
    active: NotRequired[ActiveAnswer]


class ErrorFrame(TypedDict, total=False):
    """A request refused, or something the page must know went wrong (exceptions.py)."""

    type: Literal["error"]
    code: str
    message: str
    #: Limits: whole seconds until the same request can succeed.
    retry_after: int
    #: Limits met on a socket: the type of the frame refused.
    frame: str
    #: `session_ended`: why (signed_out, password_changed, account_closed).
    reason: str


def error_frame(error: ChatError, *, frame: str | None = None) -> ErrorFrame:
    """The `error` frame for ``error`` (a refusal over HTTP answers with the same body):
    its code and words, and what the page needs to act on it. ``frame``: the type of the
    frame a limit refused."""
    result: ErrorFrame = {"type": "error", "code": error.code, "message": error.message}
    if isinstance(error, LimitError):
        result["retry_after"] = error.retry_after
        if frame is not None:
            result["frame"] = frame
    if isinstance(error, SessionEnded):
        result["reason"] = error.reason
    return result


class PartFrame(TypedDict):
    """A piece of the JSON text of a frame longer than ``FRAME_BUDGET_BYTES``.

    A frame's parts follow each other on the socket with nothing between them; the page
    joins their `data` and reads the whole as the frame it is. Nothing else on the socket
    changes: a snapshot, a `done` or a `sync` of any size arrives whole, only in pieces.
    """

    type: Literal["part"]
    #: The next characters of the frame's JSON text.
    data: str
    #: The frame's last part: its text is whole now.
    last: bool


def wire_texts(frame: Any, budget: int) -> Iterator[str]:
    """The texts of the socket messages that carry ``frame``: its JSON text, or the parts of
    it, none longer than ``budget`` bytes.

    The JSON is written ASCII-only (every other character as an escape), so a character is
    a byte and the text may be cut anywhere: a part's `data` is only a piece of a string.
    """
    text = json.dumps(frame)
    if len(text) <= budget:
        yield text
        return
    room = budget - len(json.dumps(_part("", last=False)))
    if room < 2:
        raise ValueError(f"A budget of {budget} bytes leaves no room for a part's text.")
    start = 0
    while start < len(text):
        end = min(len(text), start + room)
        # Inside the part's own string, `"` and `\` take two characters each: cut earlier
        # until the piece, so written, fits.
        while (over := _written_length(text[start:end]) - room) > 0:
            end -= max(1, over // 2)
        yield json.dumps(_part(text[start:end], last=end == len(text)))
        start = end


def _part(data: str, *, last: bool) -> PartFrame:
    return {"type": "part", "data": data, "last": last}


def _written_length(piece: str) -> int:
    """The length of ``piece`` (ASCII) written as a JSON string, without its quotes."""
    return len(piece) + piece.count('"') + piece.count("\\")


def page_frame_types() -> list[str]:
    """Every `type` of frame a page may receive, sorted: the relayed events', and those a
    socket sends of its own (snapshot, history, error, part)."""
    relayed = [_type_of(event).removeprefix("chat.") for event in get_args(PageEvent)]
    own = [_type_of(frame) for frame in (SnapshotFrame, HistoryFrame, ErrorFrame, PartFrame)]
    return sorted([*relayed, *own])


def _type_of(typed: Any) -> str:
    """The one value a TypedDict's `type` key may hold."""
    (value,) = get_args(typed.__annotations__["type"])
    return str(value)
