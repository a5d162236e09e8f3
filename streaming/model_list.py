"""A provider's list of models (``GET <base_url>/models``), read for the admin's "Fetch
models": what it lists and which of them say they take images, or an error by kind and
status that never quotes the reply."""

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from streaming.exceptions import UpstreamConnectError, UpstreamHTTPError, UpstreamProtocolError
from streaming.openai import (
    MAX_ERROR_TEXT,
    ChatRequest,
    redact,
    request_headers,
    safe_url,
    status_words,
    try_loads,
)

logger = logging.getLogger(__name__)

# The most of a /models reply read: OpenRouter's list of every model is about 1 MB.
_MAX_MODEL_LIST_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Listed:
    """A model a provider lists."""

    id: str
    """As the API names it."""
    vision: bool
    """The list says it takes images: OpenRouter's ``architecture.input_modalities`` holds
    "image", or (as some servers say it) its ``capabilities`` hold "vision"."""


def list_models(
    client: httpx.Client,
    base_url: str,
    *,
    api_key: str = "",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> list[Listed]:
    """The models ``GET <base_url>/models`` lists, in its order, each once.

    Raises UpstreamConnectError (unreachable, or no whole reply within ``timeout``),
    UpstreamHTTPError (a non-2xx reply, e.g. 401 for a refused key) or UpstreamProtocolError
    (a reply that is not OpenAI's list). Their messages say what went wrong by kind and
    status, never quoting the reply: the base URL is whatever staff typed, and a reply read
    on a staff member's behalf must not show them an internal page (``http://127.0.0.1/…?``
    makes any URL "/models"). The reply goes to the log instead, secrets taken out.
    """
    extra = dict(headers or {})
    # Only for its secrets: ``redact`` takes what a request was sent with.
    sent = ChatRequest(base_url=base_url, api_key=api_key, model="", messages=[], headers=extra)
    url = base_url.rstrip("/") + "/models"
    try:
        with client.stream(
            "GET", url, headers=request_headers(api_key, extra), timeout=timeout
        ) as response:
            body = bytearray()
            # httpx's timeout is per read: a reply trickled a byte at a time would hold the
            # admin's page for ever without a deadline for the whole.
            deadline = time.monotonic() + timeout
            for chunk in response.iter_bytes():
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the whole reply took too long")
                body += chunk
                if len(body) > _MAX_MODEL_LIST_BYTES:
                    raise UpstreamProtocolError(
                        f"The list of models is longer than {_MAX_MODEL_LIST_BYTES} bytes."
                    )
    except httpx.TimeoutException:
        raise UpstreamConnectError(
            f"{safe_url(url)} did not answer within {timeout:g} s."
        ) from None
    except httpx.TransportError as exc:
        # Only the error's kind: its text can quote what the server sent (h11's "illegal
        # status line: b'…'" for something that is not HTTP, a Redis or an SSH port).
        logger.warning("GET %s failed: %s", safe_url(url), redact(str(exc), sent))
        raise UpstreamConnectError(
            f"Could not connect to {safe_url(url)} ({type(exc).__name__})."
        ) from None
    text = body.decode("utf-8", errors="replace")
    if not response.is_success:
        _log_reply(url, response.status_code, text, sent)
        status = status_words(response.status_code)
        raise UpstreamHTTPError(
            response.status_code,
            f"{safe_url(url)} answered {status} (its reply is in the server's log).",
        )
    payload = try_loads(text)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        _log_reply(url, response.status_code, text, sent)
        raise UpstreamProtocolError(
            f"The reply of {safe_url(url)} is not a list of models "
            '({"data": [{"id": …}, …]}); it is in the server\'s log.'
        )
    listed: dict[str, Listed] = {}
    for entry in data:
        if isinstance(entry, dict) and entry.get("id"):
            model_id = str(entry["id"])
            listed.setdefault(model_id, Listed(model_id, _sees_images(entry)))
    return list(listed.values())


def _sees_images(entry: dict[str, Any]) -> bool:
    """Whether a model's entry in the list says it takes images, in the words providers use:
    OpenRouter's ``"architecture": {"input_modalities": ["text", "image"]}``, or
    ``"capabilities"`` as a list holding "vision" or an object with ``"vision": true``."""
    architecture = entry.get("architecture")
    modalities = architecture.get("input_modalities") if isinstance(architecture, dict) else None
    if isinstance(modalities, list) and "image" in modalities:
        return True
    capabilities = entry.get("capabilities")
    if isinstance(capabilities, list):
        return "vision" in capabilities
    return isinstance(capabilities, dict) and capabilities.get("vision") is True


def _log_reply(url: str, status_code: int, text: str, sent: ChatRequest) -> None:
    """A reply that was not a list of models, for staff reading the log: its start, with
    the secrets the request was sent with taken out (before it is cut, so none is left
    half in)."""
    logger.warning(
        "GET %s answered HTTP %s, not a list of models: %r",
        safe_url(url),
        status_code,
        redact(text, sent)[:MAX_ERROR_TEXT],
    )
