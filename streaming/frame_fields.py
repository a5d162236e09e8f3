"""A client frame's fields as the socket reads them (consumers.py): its claimed type before
it is parsed, UUIDs with the error code each frame's refusal carries, and a client's value
cut short to be quoted back."""

import contextlib
import re
import uuid
from typing import Any
from urllib.parse import parse_qs

from streaming.exceptions import ErrorCode, FrameError

# The most characters of a client's own value quoted back to it in an error frame.
ECHO_CHARS = 40

# The start of a frame as the page writes it ({"type": "…", …}), to name a refused frame's
# type without parsing what may be a long frame.
_CLAIMED_TYPE = re.compile(r'\s*\{\s*"type"\s*:\s*"([a-z_]{1,32})"')


def claimed_type(text_data: str | None) -> str | None:
    """The `type` a frame starts with, if it starts as the page's do; else None."""
    match = _CLAIMED_TYPE.match(text_data[:100]) if text_data else None
    return match[1] if match else None


def query_value(scope: dict[str, Any], name: str) -> str | None:
    """The value of ``name`` in the socket's query string, if it has one."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def echo(value: str) -> str:
    """A client's value, cut short to be quoted back in an error frame."""
    return value if len(value) <= ECHO_CHARS else value[:ECHO_CHARS] + "…"


def optional_uuid(frame: dict[str, Any], field: str, *, code: ErrorCode) -> uuid.UUID | None:
    """``frame[field]`` as a UUID, None when it is missing or null (else as ``uuid_field``)."""
    return None if frame.get(field) is None else uuid_field(frame, field, code=code)


def uuid_field(frame: dict[str, Any], field: str, *, code: ErrorCode) -> uuid.UUID:
    """``frame[field]`` as a UUID, or a FrameError with ``code`` unless it is a UUID string."""
    value = frame.get(field)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return uuid.UUID(value)
    raise FrameError(f"{field} must be a UUID.", code=code)
