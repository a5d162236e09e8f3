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


async def send(outgoing: Outgoing) -> bool:
    """Send one message to its group; False if the layer failed or hung.

    A failure is not raised: the database already holds what the message says, and sockets
    that miss it heal by `seq`, `sync` or a fresh snapshot. The caller decides what to log.
    """
    return await _send("group_send", outgoing.group, outgoing.message)


async def send_to_channel(channel: str, message: ChatEvent) -> bool:
    """Send ``message`` to one channel (a socket's); False if the layer failed or hung."""
    return await _send("send", channel, message)


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
