"""Ticks a node when it has work due, instead of every `tick_interval`.

A ticker that fires every 20 ms wakes an idle node 50 times a second for
nothing: CPU and power the host pays for ever. The node knows when its next
timer falls (`Node.next_deadline`), so the ticker sleeps until then. A step
between two ticks (a datagram, a client's write, a commit) may bring a timer
closer, a delta to gossip for example; the host reports every step it
processed and the wake-up is moved earlier when it must be. Ticks stay at
least `tick_interval` apart, as before, so a busy node batches its timer work
exactly as it did with the fixed ticker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class DeadlineTicker:
    """Calls `tick()` at `deadline()`, no sooner than `interval` after the previous tick."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        tick: Callable[[], None],
        deadline: Callable[[], float],
    ) -> None:
        self._loop = loop
        self._interval = interval
        self._tick = tick
        self._deadline = deadline
        self._handle: asyncio.TimerHandle | None = None
        self._wake_at = float("inf")
        """Monotonic time of the scheduled tick."""
        self._last = float("-inf")
        self._stopped = False

    def start(self) -> None:
        self._fire()

    def stop(self) -> None:
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._wake_at = float("inf")

    def stepped(self) -> None:
        """The node took a step: tick earlier if a timer came closer than the wake-up."""
        if self._handle is None or self._wake_at <= self._last + self._interval:
            return  # stopped, or already waking as early as ticks may follow each other
        self._arm()

    def _fire(self) -> None:
        self._handle = None
        self._wake_at = float("inf")
        self._last = time.monotonic()
        self._tick()
        self._arm()

    def _arm(self) -> None:
        if self._stopped:
            return
        at = max(self._deadline(), self._last + self._interval)
        if at >= self._wake_at:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._wake_at = at
        self._handle = self._loop.call_later(max(0.0, at - time.monotonic()), self._fire)
