"""A channel layer that loses, repeats or holds back chosen messages, for fault tests.

It wraps the layer the settings would otherwise use and applies `Fault`s to what is sent
through it (``group_send`` and ``send``, and their local kin ``group_send_here`` and
``send_here``), as a layer over capacity or a slow Redis would.
Tests configure it in-process (``layer.faults.append(...)``) or, for daphne processes,
through the ``CHAT_FAULTS`` environment variable (a JSON list of Fault fields) read by
``tests/live_settings.py``. Everything it did is in ``layer.applied``.
"""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from django.utils.module_loading import import_string

Action = Literal["drop", "duplicate", "delay", "slow"]


@dataclass
class Fault:
    """What to do to which messages."""

    #: The message `type` it applies to, e.g. "chat.delta", "chat.done", "generation.stop".
    type: str
    #: drop: never delivered; duplicate: delivered twice; delay: delivered `seconds` later,
    #: the sender going on at once; slow: the send itself takes `seconds` (a slow Redis).
    action: Action
    #: How many matching messages to let through untouched first.
    skip: int = 0
    #: How many matching messages (after the skipped ones) it applies to; 0 = every one.
    times: int = 1
    #: For `delay` and `slow`.
    seconds: float = 0.5
    seen: int = field(default=0, repr=False)

    def wants(self, message: dict[str, Any]) -> bool:
        """Count ``message`` if it matches; True if this fault applies to it."""
        if message.get("type") != self.type:
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        return self.times == 0 or self.seen <= self.skip + self.times


class FaultyLayer:
    """A channel layer that applies faults to what is sent, then hands it to the real one."""

    def __init__(self, inner: dict[str, Any], faults: list[dict[str, Any]] | None = None) -> None:
        self.inner = import_string(inner["BACKEND"])(**inner.get("CONFIG", {}))
        self.faults = [Fault(**spec) for spec in faults or []]
        #: (action, message type) of every fault applied, in order.
        self.applied: list[tuple[str, str]] = []
        self._held: set[asyncio.Task[None]] = set()

    def __getattr__(self, name: str) -> Any:
        # Everything but sending is the real layer's: receive, groups, extensions, flush.
        return getattr(self.inner, name)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._deliver(message, lambda m: self.inner.group_send(group, m))

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._deliver(message, lambda m: self.inner.send(channel, m))

    # Local delivery (chatsite/pubsub.py) meets the same faults as a send through Redis.
    async def group_send_here(self, group: str, message: dict[str, Any]) -> None:
        await self._deliver(message, lambda m: self.inner.group_send_here(group, m))

    async def send_here(self, channel: str, message: dict[str, Any]) -> None:
        await self._deliver(message, lambda m: self.inner.send_here(channel, m))

    async def _deliver(self, message: dict[str, Any], send: Any) -> None:
        fault = next((f for f in self.faults if f.wants(message)), None)
        if fault is None:
            await send(message)
            return
        self.applied.append((fault.action, message["type"]))
        if fault.action == "duplicate":
            await send(dict(message))
            await send(message)
        elif fault.action == "slow":
            await asyncio.sleep(fault.seconds)  # the fault itself, not a wait
            await send(message)
        elif fault.action == "delay":
            task = asyncio.create_task(self._later(fault.seconds, send, message))
            self._held.add(task)
            task.add_done_callback(self._held.discard)
        # drop: nothing

    @staticmethod
    async def _later(seconds: float, send: Any, message: dict[str, Any]) -> None:
        await asyncio.sleep(seconds)
        await send(message)


def faulty_layer(inner: dict[str, Any], faults: list[dict[str, Any]] | str = "") -> dict[str, Any]:
    """A CHANNEL_LAYERS entry wrapping ``inner`` with ``faults`` (a list, or its JSON)."""
    if isinstance(faults, str):
        faults = json.loads(faults) if faults else []
    return {
        "BACKEND": "tests.support.faults.FaultyLayer",
        "CONFIG": {"inner": inner, "faults": faults},
    }
