"""Frames on a socket of the in-process ASGI application (channels' WebsocketCommunicator)."""

import uuid
from typing import Any

from channels.testing import WebsocketCommunicator

#: Simulator directives for an answer whose first token comes after 5 s: a stop sent right
#: behind its message comes before the answer's first piece.
SLOW_TO_START = "sim:tokens=5 sim:fault=stall sim:after=0 sim:stall=5"


def user_message(content: str, client_id: uuid.UUID | str | None = None) -> dict[str, str]:
    """A `user_message` frame, with a fresh client_id unless one is given."""
    return {"type": "user_message", "content": content, "client_id": str(client_id or uuid.uuid4())}


async def receive_until(
    communicator: WebsocketCommunicator, frame_type: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Every frame up to and including the first of ``frame_type``."""
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame["type"] == frame_type:
            return frames


async def answering(communicator: WebsocketCommunicator, content: str) -> str:
    """Send ``content`` and wait for its answer's first piece; the answer's id."""
    await communicator.send_json_to(user_message(content))
    frames = await receive_until(communicator, "delta")
    return str(frames[-1]["message_id"])
