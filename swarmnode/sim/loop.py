"""Virtual time: one priority queue of timed events, run in order.

Everything a simulated cluster does (ticks, deliveries, client operations,
faults) is an event at a virtual time. Events at the same time run in the
order they were scheduled, so a run depends only on what was scheduled, never
on wall time or on the host; that is what makes a seed replay a run exactly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class SimulationStalled(RuntimeError):
    """Events keep running at one instant without virtual time moving on."""


class EventLoop:
    """A virtual clock and the events waiting on it."""

    def __init__(self, *, max_events_per_instant: int = 1_000_000) -> None:
        self.now = 0.0
        self.events_run = 0
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0
        self._max_per_instant = max_events_per_instant

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` at virtual time `when` (never earlier than now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, fn, args))

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self.call_at(self.now + delay, fn, *args)

    def pending(self) -> int:
        return len(self._heap)

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, end: float) -> None:
        """Run every event due at or before `end`; the clock then reads `end`."""
        heap = self._heap
        same_instant = 0
        while heap and heap[0][0] <= end:
            when, _, fn, args = heapq.heappop(heap)
            if when == self.now:
                same_instant += 1
                if same_instant > self._max_per_instant:
                    raise SimulationStalled(
                        f"{same_instant} events at t={when:.6f} without progress"
                    )
            else:
                same_instant = 0
                self.now = when
            self.events_run += 1
            fn(*args)
        self.now = max(self.now, end)
