"""The one door for events: a service says what happened once, on its transaction
(``on_commit``); after the commit the door sends it to the channel layer from the event
loop, in order, and no database thread ever waits for that loop.

After the commit, on the thread that committed, the events go one of three ways:

- the caller awaits them: the commits of a service run by ``database.to_async`` hand their
  events to the caller's loop, which starts sending them at once, and the caller goes on
  only once they are sent, so frames leave in the order the changes were made (a message
  before its answer's `start`), and a long service (a sweep of many answers) announces
  what it did as it goes;
- the thread serves a loop that does not wait for it (a synchronous view or the admin,
  run by Django's ASGI handler): they are handed to that loop without waiting;
- there is no loop at all (a management command): they are sent there and then; once the
  layer fails, that process sends no more, since with Redis down every send costs
  SEND_TIMEOUT_SECONDS and the database already holds what they say.

Sends to one group go one after another in the order they were queued, and a batch that
names several groups waits for what each of them has before it; batches for other groups
do not wait (each a round trip to Redis, one process-wide line of them held an answer's
start behind every other answer's events: seconds at 200 answers). Each send stands on its
own, so one that fails does not keep the rest from going.
"""

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence

from asgiref.sync import SyncToAsync
from channels.layers import get_channel_layer
from django.db import transaction

from streaming import layer
from streaming.layer import Outgoing

logger = logging.getLogger(__name__)

#: What a service queues: a message for a group, or a function called after the commit
#: (on the committing thread, where it may read the database) for messages that must say
#: what is true then, whatever was committed meanwhile (a conversation as lists show it).
Queued = Outgoing | Callable[[], Iterable[Outgoing]]


class Tracked:
    """The events a coroutine's services commit (``tracked``), sent on its loop: the
    coroutine waits for them with ``sent``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: The batches handed to the loop, each sent after what its groups had before it.
        self.batches: list[asyncio.Task[bool]] = []

    def committed(self, outgoing: Sequence[Outgoing]) -> None:
        """From any thread: the loop starts sending ``outgoing`` after what its groups have."""
        self.loop.call_soon_threadsafe(self._chain, outgoing)

    def _chain(self, outgoing: Sequence[Outgoing]) -> None:
        self.batches.append(_chain(outgoing))

    async def sent(self) -> None:
        """Return once every event committed so far is sent (a cancel does not stop them),
        and so all that was queued before them for the same groups.

        A service's hand-overs reach the loop before its return does (both go through
        call_soon_threadsafe, in order), so its batches are known by the time its caller asks.
        """
        waiting = [batch for batch in self.batches if not batch.done()]
        if waiting:
            await asyncio.shield(asyncio.wait(waiting))


_tracked: contextvars.ContextVar[Tracked | None] = contextvars.ContextVar(
    "tracked_events", default=None
)


def on_commit(*queued: Queued) -> None:
    """Send ``queued``, in this order, once the current transaction commits (at once outside
    one); never if it rolls back. Never raises: what the events say is saved already."""
    transaction.on_commit(functools.partial(_committed, queued), robust=True)


@contextlib.contextmanager
def tracked() -> Iterator[Tracked]:
    """In a coroutine: the events committed inside the block, here and in the threads it
    runs services on (``to_async``), are sent on this loop as they commit, and ``sent``
    waits for them."""
    tracking = Tracked(asyncio.get_running_loop())
    token = _tracked.set(tracking)
    try:
        yield tracking
    finally:
        _tracked.reset(token)


async def drain() -> None:
    """Wait until everything handed to this loop is sent (a process shutting down)."""
    loop = asyncio.get_running_loop()
    while waiting := [tail for tail in _tails.get(loop, {}).values() if not tail.done()]:
        await asyncio.wait(waiting)


def _committed(queued: Sequence[Queued]) -> None:
    outgoing = _resolve(queued)
    if not outgoing:
        return
    tracking = _tracked.get()
    if tracking is not None:
        tracking.committed(outgoing)
        return
    loop = _serving_loop()
    if loop is not None:
        loop.call_soon_threadsafe(_chain, outgoing)
    else:
        _send_without_loop(outgoing)


def _resolve(queued: Sequence[Queued]) -> list[Outgoing]:
    outgoing: list[Outgoing] = []
    for item in queued:
        if isinstance(item, Outgoing):
            outgoing.append(item)
            continue
        try:
            outgoing.extend(item())
        except Exception:
            logger.exception("Could not make the events of a change after its commit")
    return outgoing


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or the one whose work this thread does (Django's
    ASGI handler runs synchronous views so, through asgiref), if it still runs."""
    with contextlib.suppress(RuntimeError):
        return asyncio.get_running_loop()
    # Where asgiref keeps it for its own async_to_sync, which would wait on that loop.
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    pid = getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None)
    if loop is None or pid != os.getpid() or loop.is_closed() or not loop.is_running():
        return None
    assert isinstance(loop, asyncio.AbstractEventLoop)
    return loop


# Each loop's last batch for each group still being sent: a group's next batch waits for it.
_tails: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[bool]]]" = (
    weakref.WeakKeyDictionary()
)
# The batches being sent, kept from the garbage collector until they are done.
_sending: set["asyncio.Task[bool]"] = set()


def _chain(outgoing: Sequence[Outgoing]) -> "asyncio.Task[bool]":
    """Start sending ``outgoing`` on the running loop once what each of its groups had
    before it is sent."""
    loop = asyncio.get_running_loop()
    tails = _tails.setdefault(loop, {})
    groups = {each.group for each in outgoing}
    before = [tails[group] for group in groups if group in tails]
    task = loop.create_task(_send_after(before, outgoing), name="events")
    for group in groups:
        tails[group] = task
    _sending.add(task)

    def finished(done: "asyncio.Task[bool]") -> None:
        _sending.discard(done)
        for group in groups:
            if tails.get(group) is done:
                del tails[group]

    task.add_done_callback(finished)
    return task


async def _send_after(before: "list[asyncio.Task[bool]]", outgoing: Sequence[Outgoing]) -> bool:
    if waiting := [batch for batch in before if not batch.done()]:
        await asyncio.wait(waiting)
    return await _send_each(outgoing, stop_at_failure=False)


async def _send_each(outgoing: Sequence[Outgoing], *, stop_at_failure: bool) -> bool:
    """Send one message after the other; False if any failed."""
    sent = True
    for each in outgoing:
        try:
            ok = await layer.send(each)
        except Exception:
            logger.exception("Sending %s to %s failed", each.message["type"], each.group)
            ok = False
        if not ok:
            logger.warning("Could not send %s to %s", each.message["type"], each.group)
            sent = False
            if stop_at_failure:
                break
    return sent


# Layers that failed a process without a loop: it sends them nothing more.
_failed_layers: "weakref.WeakSet[object]" = weakref.WeakSet()


def _send_without_loop(outgoing: Sequence[Outgoing]) -> None:
    layer = get_channel_layer()
    if layer is None or layer in _failed_layers:
        return
    try:
        # A loop of its own, for these sends alone: no other loop is there to wait on.
        sent = asyncio.run(_send_each(outgoing, stop_at_failure=True))
    except Exception:
        logger.exception("Could not send the events of a change")
        sent = False
    if not sent:
        _failed_layers.add(layer)
        logger.warning(
            "The channel layer failed: this process sends no more events. Open tabs find "
            "out at their next frame or reload."
        )
