"""The errors chatsite raises, as a tree you can read at a glance.

    ChatError                       every error a person may see: a stable `code` and a message
    ├── UpstreamError               the model API failed us
    │   ├── UpstreamHTTPError       a non-2xx reply before the stream (401, 404, 429, 5xx…)
    │   ├── UpstreamConnectError    could not connect, or the connection dropped mid-stream
    │   ├── UpstreamTimeout         no byte for OPENAI_READ_TIMEOUT seconds
    │   ├── UpstreamProtocolError   a reply we cannot read (invalid JSON, not an event stream)
    │   └── UpstreamStreamError     the API sent an {"error": …} event mid-stream
    ├── FrameError                  a WebSocket frame from the browser we cannot accept
    ├── BusyError                   the conversation is already answering
    ├── ConversationGone            the conversation was deleted while a socket had it open
    ├── LayerUnavailable            the channel layer (Redis) cannot be reached
    └── ServerError                 a frame failed for a reason that is a bug, not the sender's

No message ever carries the API key: upstream messages are the provider's own text, and
the request headers are never part of an error.
"""


class ChatError(Exception):
    """Base of every error a user may see; `code` is stable, `message` is for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message

    def as_frame(self) -> dict[str, str]:
        """The `error` frame a socket sends for this error."""
        return {"type": "error", "code": self.code, "message": self.message}


class UpstreamError(ChatError):
    """The model API failed; the answer ends with status `error` and this message."""

    code = "upstream_error"


class UpstreamHTTPError(UpstreamError):
    """The API replied with a non-2xx status before any event; carries its own message."""

    code = "upstream_http"

    def __init__(self, status_code: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.message}"


class UpstreamConnectError(UpstreamError):
    """The API could not be reached, or the connection broke mid-stream."""

    code = "upstream_connection"


class UpstreamTimeout(UpstreamError):
    """The API sent nothing for OPENAI_READ_TIMEOUT seconds."""

    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    """The API sent something that is not a Chat Completions event stream."""

    code = "upstream_protocol"


class UpstreamStreamError(UpstreamError):
    """The API reported an error inside the stream, after it had started."""

    code = "upstream_stream_error"


class FrameError(ChatError):
    """A frame from the browser was not acceptable; the socket stays open."""

    code = "bad_frame"


class BusyError(ChatError):
    """An answer is already streaming in this conversation."""

    code = "busy"


class ConversationGone(ChatError):
    """The conversation was deleted; the socket says so and closes with 4404."""

    code = "deleted"


class LayerUnavailable(ChatError):
    """The channel layer (Redis) cannot be reached; the socket closes with 4503."""

    code = "unavailable"


class ServerError(ChatError):
    """Handling a frame failed unexpectedly (a bug); the page is told, the socket stays open."""

    code = "server_error"
