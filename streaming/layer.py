"""The channel layer, as everything but the services uses it: one message to a group, or
to one socket's channel, within a bounded time; a failure is counted and answered with
False, never raised.

Services do not send: they queue their events on the transaction
(streaming/services/events.py), which sends them through here after the commit.
"""

import asyncio
import logging
from dataclasses import dataclass

from channels.layers import get_channel_layer
from django.conf import settings

from streaming import metrics
from streaming.control import (
    ChatEvent,
    ControlRequest,
    UserEvent,
    user_group_name,
)
from streaming.models import control_group_name, group_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One message for the channel layer, and the group it goes to."""

    group: str
    message: "LayerMessage"


def to_conversation(conversation_id: object, event: ChatEvent) -> Outgoing:
    """``event`` for every socket of the conversation."""
    return Outgoing(group_name(conversation_id), event)


def to_user(user_id: object, event: UserEvent) -> Outgoing:
    """``event`` for every socket of the user, on every process."""
    return Outgoing(user_group_name(user_id), event)


def to_answer(request: ControlRequest) -> Outgoing:
    """``request`` for the conversation's running answer, on whichever process it runs."""
    return Outgoing(control_group_name(request["conversation_id"]), request)


# The longest a send may take. A Redis that stops answering without closing the connection
# (a partition, a failover) would otherwise hold every send of the process for as long as
# TCP takes to give up: channels-redis sends through one lock per Redis host.
SEND_TIMEOUT_SECONDS = 5.0


async def send(outgoing: Outgoing, *, here: bool = False) -> bool:
    """Send one message to its group; False if the layer failed or hung.

    A failure is not raised: the database already holds what the message says, and sockets
    that miss it heal by `seq`, `sync` or a fresh snapshot. The caller decides what to log.
    ``here``: only to this process's sockets of the group, not through Redis (for a group
    that ``only_here`` found no other process listening to).
    """
    method = "group_send_here" if here else "group_send"
    return await _send(method, outgoing.group, outgoing.message)


async def send_to_channel(channel: str, message: ChatEvent, *, here: bool = False) -> bool:
    """Send ``message`` to one channel (a socket's); False if the layer failed or hung.
    ``here``: put straight into the channel, one of this process's (``is_here``)."""
    return await _send("send_here" if here else "send", channel, message)


async def only_here(group: str) -> bool:
    """Whether no other process listens to ``group``, known from Redis; if so, whatever this
    process sent the group before is in its sockets' channels, so what it sends next may
    go straight to them (``send(..., here=True)``). False whenever it cannot be told: a
    layer without local delivery (chatsite/pubsub.py), or one that failed or hung.
    """
    layer = get_channel_layer()
    if layer is None or not settings.STREAM_LOCAL_DELIVERY or not hasattr(layer, "only_here"):
        return False
    try:
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            return bool(await layer.only_here(group))
    except Exception as exc:
        logger.debug("Could not tell who listens to %s: %r", group, exc)
        return False


def is_here(channel: str) -> bool:
    """Whether ``channel`` is a socket of this process (a layer that can tell)."""
    layer = get_channel_layer()
    return layer is not None and hasattr(layer, "is_here") and bool(layer.is_here(channel))


LayerMessage = ChatEvent | UserEvent | ControlRequest


async def _send(method: str, to: str, message: LayerMessage) -> bool:
    """``layer.send`` or ``layer.group_send`` within SEND_TIMEOUT_SECONDS; False if it failed."""
    layer = get_channel_layer()
    if layer is None:
        return True
    try:
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            await getattr(layer, method)(to, message)
    except Exception as exc:
        logger.debug("Could not send %s to %s: %r", message["type"], to, exc)
        metrics.channel_layer_send_failed()
        return False
    return True
