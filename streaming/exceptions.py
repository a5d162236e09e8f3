"""The errors chatsite raises, as a tree you can read at a glance.

    ChatError                       every error a person may see: a stable `code` and a message
    ├── UpstreamError               the model API failed us
    │   ├── UpstreamHTTPError       a non-2xx reply before the stream (401, 404, 429, 5xx…)
    │   ├── UpstreamConnectError    could not connect, or the connection dropped mid-stream
    │   ├── UpstreamTimeout         no byte for OPENAI_READ_TIMEOUT seconds
    │   ├── UpstreamBusy            no free connection to the API in this process
    │   ├── UpstreamProtocolError   a reply we cannot read (invalid JSON, not an event stream)
    │   └── UpstreamStreamError     the API sent an {"error": …} event mid-stream
    ├── FrameError                  a WebSocket frame from the browser we cannot read
    ├── Invalid                     a request that cannot be done as asked; `code` says why
    ├── BusyError                   the conversation is already answering
    ├── ModelUnavailable            the conversation's model is no longer offered
    ├── KeyUnreadable               a provider's stored API key cannot be decrypted
    ├── LimitError                  a per-user or per-server limit; says when to try again
    │   ├── RateLimited             too much at once, or too fast (`rate_limited`)
    │   └── QuotaExceeded           the day's token budget is spent (`quota_exceeded`)
    ├── StorageFull                 the user's storage quota has no room for the message
    ├── ConversationGone            the conversation was deleted while a socket had it open
    ├── LayerUnavailable            the channel layer (Redis) cannot be reached
    ├── SessionEnded                the socket's login session ended (logout, password, account)
    ├── ImportRefused               an uploaded export file that cannot be imported; lists why
    ├── AttachmentRefused           an attached file chatsite does not take; `reason` says why
    └── ServerError                 a frame failed for a reason that is a bug, not the sender's

Each class has a `kind` of its own; the upstream ones' (http, connect, timeout, busy,
protocol, stream) label chatsite_upstream_errors.

No message ever carries the API key: upstream messages are the provider's own text, and
the request headers are never part of an error.
"""

import enum
import math
from typing import Literal


class ErrorCode(enum.StrEnum):
    """Every `code` an error can carry: stable words that programs (the page) act on.

    The page's copy, streaming/static/streaming/chat/protocol.js, is generated from this
    (``make protocol``), and ``make check`` fails while it is stale.
    """

    # The classes' own codes, one each (below).
    ERROR = "error"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_HTTP = "upstream_http"
    UPSTREAM_CONNECTION = "upstream_connection"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    SERVER_BUSY = "server_busy"
    UPSTREAM_PROTOCOL = "upstream_protocol"
    UPSTREAM_STREAM_ERROR = "upstream_stream_error"
    BAD_FRAME = "bad_frame"
    INVALID = "invalid"
    BUSY = "busy"
    MODEL_UNAVAILABLE = "model_unavailable"
    PROVIDER_KEY_UNREADABLE = "provider_key_unreadable"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    DELETED = "deleted"
    UNAVAILABLE = "unavailable"
    SESSION_ENDED = "session_ended"
    BAD_IMPORT = "bad_import"
    BAD_ATTACHMENT = "bad_attachment"
    STORAGE_FULL = "storage_full"
    # Why an import was refused before its file was read.
    IMPORT_RUNNING = "import_running"
    IMPORTS_PER_DAY = "imports_per_day"
    SERVER_ERROR = "server_error"
    # A frame the socket cannot read.
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    FRAME_TOO_LONG = "frame_too_long"
    # What a request asked that cannot be done, one code per field or rule, so the page
    # answers it where it was asked (the composer, the prompt, the title, the picker…).
    EMPTY_CONTENT = "empty_content"
    CONTENT_TOO_LONG = "content_too_long"
    BAD_TEXT = "bad_text"
    BAD_CLIENT_ID = "bad_client_id"
    BAD_PARENT = "bad_parent"
    BAD_RETRY = "bad_retry"
    BAD_CONTINUE = "bad_continue"
    BAD_STOP = "bad_stop"
    BAD_SWITCH = "bad_switch"
    BAD_HISTORY = "bad_history"
    BAD_SYNC = "bad_sync"
    BAD_SYSTEM_PROMPT = "bad_system_prompt"
    SYSTEM_PROMPT_TOO_LONG = "system_prompt_too_long"
    BAD_TITLE = "bad_title"
    TITLE_TOO_LONG = "title_too_long"
    BAD_MODEL = "bad_model"
    UNKNOWN_MODEL = "unknown_model"
    TOO_MANY_ATTACHMENTS = "too_many_attachments"
    NO_VISION = "no_vision"


class ChatError(Exception):
    """Base of every error a user may see; `code` is stable, `message` is for people."""

    #: What the page and the API are told, stable.
    code = ErrorCode.ERROR
    #: Which branch of the tree it is, one word of its own per class: the `kind` label of
    #: the metrics and the `error_kind` field of the logs, which so never disagree.
    kind = "error"

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class UpstreamError(ChatError):
    """The model API failed; the answer ends with status `error` and this message."""

    code = ErrorCode.UPSTREAM_ERROR
    kind = "upstream"


class UpstreamHTTPError(UpstreamError):
    """The API replied with a non-2xx status before any event; carries its own message."""

    code = ErrorCode.UPSTREAM_HTTP
    kind = "http"

    def __init__(self, status_code: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.message}"


class UpstreamConnectError(UpstreamError):
    """The API could not be reached, or the connection broke mid-stream."""

    code = ErrorCode.UPSTREAM_CONNECTION
    kind = "connect"


class UpstreamTimeout(UpstreamError):
    """The API sent nothing for OPENAI_READ_TIMEOUT seconds."""

    code = ErrorCode.UPSTREAM_TIMEOUT
    kind = "timeout"


class UpstreamBusy(UpstreamError):
    """Every connection of the process's client is in use; not retried, the user may."""

    code = ErrorCode.SERVER_BUSY
    kind = "busy"


class UpstreamProtocolError(UpstreamError):
    """The API sent something that is not a Chat Completions event stream."""

    code = ErrorCode.UPSTREAM_PROTOCOL
    kind = "protocol"


class UpstreamStreamError(UpstreamError):
    """The API reported an error inside the stream, after it had started."""

    code = ErrorCode.UPSTREAM_STREAM_ERROR
    kind = "stream"


class FrameError(ChatError):
    """A frame from the browser cannot be read (not JSON, no known type, a malformed field);
    the socket stays open."""

    code = ErrorCode.BAD_FRAME
    kind = "frame"


class Invalid(ChatError):
    """A request that cannot be done as asked: a value missing, malformed or too long, or
    naming something that is not there. Nothing was written; `code` names the rule
    (``empty_content``, ``title_too_long``…), so the page answers it where it was asked."""

    code = ErrorCode.INVALID
    kind = "invalid"


class BusyError(ChatError):
    """An answer is already streaming in this conversation."""

    code = ErrorCode.BUSY
    kind = "answering"


class ModelUnavailable(ChatError):
    """The conversation's chosen model (or its provider) was disabled or removed."""

    code = ErrorCode.MODEL_UNAVAILABLE
    kind = "model"


class KeyUnreadable(ChatError):
    """A provider's stored API key cannot be decrypted: the secret it was sealed with changed."""

    code = ErrorCode.PROVIDER_KEY_UNREADABLE
    kind = "key"


class LimitError(ChatError):
    """Over a limit: nothing was written and nothing asked of the model; try again later."""

    code = ErrorCode.RATE_LIMITED
    kind = "limit"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        #: Whole seconds to wait before the same request can succeed (at least 1).
        self.retry_after = max(1, math.ceil(retry_after))


class RateLimited(LimitError):
    """Too many answers at once, messages a minute, frames a second, or open sockets."""

    code = ErrorCode.RATE_LIMITED
    kind = "rate"


class QuotaExceeded(LimitError):
    """The user's tokens for the day are spent; ``retry_after`` runs to the next day."""

    code = ErrorCode.QUOTA_EXCEEDED
    kind = "quota"


class StorageFull(ChatError):
    """The user's messages fill their storage quota (characters of text): nothing was
    written; deleting conversations, or staff raising the quota, makes room."""

    code = ErrorCode.STORAGE_FULL
    kind = "storage"


class ConversationGone(ChatError):
    """The conversation was deleted; the socket says so and closes with 4404."""

    code = ErrorCode.DELETED
    kind = "gone"


class LayerUnavailable(ChatError):
    """The channel layer (Redis) cannot be reached; the socket closes with 4503."""

    code = ErrorCode.UNAVAILABLE
    kind = "layer"


class SessionEnded(ChatError):
    """The login session the socket was opened with no longer holds; it closes with 4401.

    `reason` says why, for the page and the logs: ``signed_out`` (logged out, expired, or
    replaced), ``password_changed`` or ``account_closed`` (deactivated or deleted).
    """

    code = ErrorCode.SESSION_ENDED
    kind = "session"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ImportRefused(ChatError):
    """An uploaded export file that was not imported (nothing of it was written).

    `problems` says what is wrong, one line each, naming where in the file it is. `code`
    is ``bad_import`` for the file itself; ``storage_full``, ``import_running`` or
    ``imports_per_day`` for a limit of the user's.
    """

    code = ErrorCode.BAD_IMPORT
    kind = "import"

    def __init__(self, problems: list[str], *, code: ErrorCode | None = None) -> None:
        count = len(problems)
        super().__init__(
            f"The file was not imported: {count} problem{'s' if count != 1 else ''} found.",
            code=code,
        )
        self.problems = problems


#: Why an attached file was refused, one word each, for the metrics (AttachmentRefused).
AttachmentReason = Literal["size", "empty", "type", "encoding", "bomb", "unreadable", "no_text"]


class AttachmentRefused(ChatError):
    """An attached file that was not taken (nothing of it was stored).

    The message names the file as its owner gave it, for them alone. `reason` is one word
    for the metrics: ``size``, ``empty``, ``type`` (not an image, PDF or UTF-8 text, or an
    SVG), ``encoding`` (text, but not UTF-8), ``bomb`` (an image of too many pixels),
    ``unreadable`` (damaged, or a PDF behind a password) or ``no_text`` (a PDF with no text).
    """

    code = ErrorCode.BAD_ATTACHMENT
    kind = "attachment"

    def __init__(self, message: str, *, reason: AttachmentReason) -> None:
        super().__init__(message)
        self.reason: AttachmentReason = reason


class ServerError(ChatError):
    """Handling a frame failed unexpectedly (a bug); the page is told, the socket stays open."""

    code = ErrorCode.SERVER_ERROR
    kind = "server"
