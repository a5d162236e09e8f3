"""Noticing that this process stood still: frozen (SIGSTOP, a stalled virtual machine) or
starved of CPU.

While its event loop stands still a process writes no heartbeat, and after
STREAM_ORPHAN_SECONDS another process's sweep may end its answers and announce `done`.
Once it runs again nothing tells it so, unless it asks the database: the watch says when it
must ask first. It knows only time, nothing of answers or rows.
"""

import asyncio
import contextvars
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mark:
    """A moment of this process, as its watch tells it."""

    #: The stalls noticed by then.
    stalls: int
    #: The loop's time (monotonic seconds).
    at: float


class LoopWatch:
    """Counts the times this event loop stood still for longer than ``longest`` seconds.

    A callback ticks four times per ``longest``; the loop time between two ticks (or since
    the last one, for code that runs before the tick could after a resume) is how long the
    loop stood still. The monotonic clock runs on while a process is frozen.
    """

    def __init__(self, longest: float) -> None:
        self.longest = longest
        #: The stalls noticed so far: code that must not act across a stall notes it, and
        #: compares it before acting (``check``).
        self.stalls = 0
        #: Set on each stall noticed, for the one who confirms what a stall may have hidden.
        self.noticed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ticked = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Tick until ``stop``."""
        if self._timer is None:
            self._tick()

    def stop(self) -> None:
        """Tick no more."""
        if self._timer is not None:
            self._timer.cancel()

    def _tick(self) -> None:
        self.check()
        self._timer = self._loop.call_later(self.longest / 4, self._tick)

    def check(self) -> int:
        """The stalls so far, counting one that ends now: the loop has not run for longer
        than ``longest``, and whoever runs first after it (this caller, or the tick) says so."""
        now = self._loop.time()
        still = now - self._ticked
        self._ticked = now
        if still > self.longest:
            self.stalls += 1
            self.noticed.set()
            # Said of the process, not of the answer whose check noticed it: a fresh context
            # leaves out the fields that name that answer in its records.
            context = contextvars.Context()
            message = "This process stood still for %.1f s"
            self._loop.call_soon(logger.warning, message, still, context=context)
        return self.stalls

    def mark(self) -> Mark:
        """This moment: the stalls so far (``check``) and the loop's time."""
        return Mark(self.check(), self._loop.time())
