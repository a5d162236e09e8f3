"""The JSON of OpenAI's Chat Completions API, as the simulator reads and writes it.

Shapes follow what api.openai.com sends, key order included, so a client that works here
meets no surprise upstream.
"""

import base64
import binascii
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

FINGERPRINT = "fp_simulator"
MODEL_CREATED = 1_700_000_000
"""A fixed `created` for /v1/models, so that listing is deterministic."""

STREAM_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"

AZURE_PROMPT_FILTER: dict[str, Any] = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
}
"""The chunk Azure OpenAI sends first: no choices, no id, just the prompt's filter results."""

#: The types of content part the simulator takes (OpenAI takes audio and files besides).
PART_TYPES = ("text", "image_url")
#: The images OpenAI takes in a data: URL.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
IMAGE_DETAILS = ("auto", "low", "high")
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*);base64,(?P<data>.*)", re.S)

# status: (message, type, code). OpenAI's own wording where it has one; {model} is filled in.
_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: (
        "Country, region, or territory not supported.",
        "request_forbidden",
        "unsupported_country_region_territory",
    ),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    500: (STREAM_ERROR_MESSAGE, "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
    ),
}


class InvalidRequest(Exception):
    """A request body OpenAI would refuse with a 400; carries the error's `param` and `code`."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI error object: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def status_error(status: int, model: str) -> dict[str, Any]:
    """The error body OpenAI sends with `status` (a generic one for statuses it has no text for)."""
    default_type = "server_error" if status >= 500 else "invalid_request_error"
    message, type_, code = _STATUS_ERRORS.get(
        status, (f"Simulated HTTP {status} error.", default_type, None)
    )
    return error_body(message.format(model=model), type_, code=code)


def stream_error() -> dict[str, Any]:
    """The error event OpenAI sends in place of a chunk when an answer fails midway."""
    return error_body(STREAM_ERROR_MESSAGE, "server_error")


def usage(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    """A `usage` object; reasoning tokens are part of `completion_tokens`, as OpenAI counts."""
    counts: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if reasoning_tokens:
        counts["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return counts


def model_list(models: Sequence[str]) -> dict[str, Any]:
    """The body of GET /v1/models: the models this server lists (it answers as any)."""
    data = [
        {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": "chatsite-simulator"}
        for model in models
    ]
    return {"object": "list", "data": data}


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a Chat Completions request body the simulator acts on."""

    model: str
    """The model to echo back."""
    messages: list[dict[str, Any]]
    """The conversation, as sent."""
    stream: bool
    """Answer as an event stream rather than one JSON object."""
    include_usage: bool
    """`stream_options.include_usage`: end the stream with a usage chunk."""
    max_tokens: int | None
    """`max_completion_tokens` or `max_tokens`: cut the answer short with finish_reason "length"."""

    @property
    def last_user_content(self) -> Any:
        """The `content` of the last message from the user, as sent: a string, a list of
        parts, or None ("" if there is no such message)."""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message.get("content")
        return ""

    @property
    def last_user_text(self) -> str:
        """The text of the last message from the user ("" if there is none)."""
        return message_text(self.last_user_content)

    @property
    def prefix(self) -> str:
        """The text of a last message from the assistant: the start of the answer, to go on
        from ("" when the last message is not the assistant's)."""
        if self.messages[-1]["role"] == "assistant":
            return message_text(self.messages[-1].get("content"))
        return ""

    @property
    def prompt_tokens(self) -> int:
        """A deterministic stand-in for a tokenizer: words, plus 3 per message for the framing."""
        words = sum(len(message_text(m.get("content")).split()) for m in self.messages)
        return words + 3 * len(self.messages)


def parse_chat_request(body: Any, default_model: str) -> ChatRequest:
    """Validate a decoded request body as OpenAI would, enough to catch client bugs."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise _invalid_type("model", "a non-empty string")
    if "messages" not in body:
        raise InvalidRequest(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array")
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _invalid_type(f"messages[{index}]", "an object with a string 'role'")
        _check_content(message, f"messages[{index}]")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise _invalid_type("stream_options", "an object with a boolean 'include_usage'")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=options.get("include_usage", False),
        max_tokens=_max_tokens(body),
    )


@dataclass(frozen=True)
class DataURL:
    """What a base64 `data:` URL holds."""

    media_type: str
    """Its media type, as written: "image/png"."""
    data: bytes
    """The bytes its base64 stands for."""


def data_url(url: str) -> DataURL | None:
    """What the base64 `data:` URL ``url`` holds; None if it is none, or its base64 is bad."""
    found = _DATA_URL.fullmatch(url)
    if found is None:
        return None
    try:
        data = base64.b64decode(found["data"], validate=True)
    except binascii.Error:
        return None
    return DataURL(found["type"], data)


def message_text(content: Any) -> str:
    """The text of a message's `content`: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


@dataclass(frozen=True)
class Completion:
    """One answer's identity, shared by all its chunks, and the objects that carry it."""

    model: str
    """The model named in every chunk."""
    include_usage: bool = False
    """Whether every chunk carries `"usage": null` (a usage chunk closes the stream)."""
    id: str = field(default_factory=lambda: "chatcmpl-sim" + secrets.token_hex(12))
    """The `id` of every chunk of this answer."""
    created: int = field(default_factory=lambda: int(time.time()))
    """The `created` of every chunk of this answer."""

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        """A `chat.completion.chunk` with one choice carrying `delta`."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._chunk([choice])

    def chunk_without_delta(self) -> dict[str, Any]:
        """A chunk whose choice has no `delta` key at all, as some compatible servers send."""
        return self._chunk([{"index": 0, "finish_reason": None}])

    def usage_chunk(self, counts: dict[str, Any]) -> dict[str, Any]:
        """The last chunk when usage was asked for: no choices, just the usage."""
        return {**self._chunk([]), "usage": counts}

    def message(
        self, content: str, reasoning: str, finish_reason: str, counts: dict[str, Any]
    ) -> dict[str, Any]:
        """A whole `chat.completion` object, the answer to a request without `stream`."""
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if reasoning:
            message["reasoning_content"] = reasoning
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": counts,
        }

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk


def _check_content(message: dict[str, Any], where: str) -> None:
    """Refuse a message's `content` OpenAI would refuse, as it words it: neither a string
    nor an array of parts (nor null, which an assistant's tool calls carry), or a part that
    is malformed, of a type the simulator does not take, or an image outside a user's
    message."""
    content = message.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid_type(f"{where}.content", "a string or an array of parts")
    if not content:
        raise InvalidRequest(
            f"Invalid '{where}.content': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param=f"{where}.content",
            code="empty_array",
        )
    for number, part in enumerate(content):
        param = f"{where}.content[{number}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _invalid_type(param, "an object with a string 'type'")
        if part["type"] not in PART_TYPES:
            raise _invalid_value(f"{param}.type", part["type"], PART_TYPES)
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise _invalid_type(f"{param}.text", "a string")
            continue
        if message["role"] != "user":
            raise InvalidRequest(
                f"Invalid '{where}'. Image URLs are only allowed for messages with role "
                f"'user', but this message with role '{message['role']}' contains an image URL.",
                param=where,
                code="invalid_value",
            )
        _check_image(part.get("image_url"), f"{param}.image_url")


def _check_image(image: Any, param: str) -> None:
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise _invalid_type(param, "an object with a string 'url'")
    detail = image.get("detail", "auto")
    if detail not in IMAGE_DETAILS:
        raise _invalid_value(f"{param}.detail", detail, IMAGE_DETAILS)
    url = image["url"]
    if url.startswith(("http://", "https://")):
        return
    if not url.startswith("data:"):
        raise InvalidRequest(
            f"Invalid '{param}.url'. Expected a base64-encoded data URL with an image MIME "
            "type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value "
            "without the 'data:' prefix.",
            param=f"{param}.url",
            code="invalid_value",
        )
    decoded = data_url(url)
    if decoded is None or decoded.media_type not in IMAGE_TYPES:
        raise InvalidRequest(
            "You uploaded an unsupported image. Please make sure your image has of one the "
            "following formats: ['png', 'jpeg', 'gif', 'webp'].",
            param=f"{param}.url",
            code="invalid_image_format",
        )


def _max_tokens(body: dict[str, Any]) -> int | None:
    # max_completion_tokens replaced max_tokens; when both are sent, the newer one counts.
    for param in ("max_completion_tokens", "max_tokens"):
        value = body.get(param)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _invalid_type(param, "an integer of at least 1")
        return value
    return None


def _invalid_value(param: str, value: Any, supported: Sequence[str]) -> InvalidRequest:
    names = [f"'{name}'" for name in supported]
    listed = ", ".join(names[:-1]) + f"{',' if len(names) > 2 else ''} and {names[-1]}"
    return InvalidRequest(
        f"Invalid value: {value!r}. Supported values are: {listed}.",
        param=param,
        code="invalid_value",
    )


def _invalid_type(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid value for '{param}': expected {expected}.", param=param, code="invalid_type"
    )
