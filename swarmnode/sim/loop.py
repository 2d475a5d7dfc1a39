"""Virtual time: one priority queue of timed events, run in order, that asyncio can run on.

Everything a simulated cluster does (ticks, deliveries, client operations,
faults) is an event at a virtual time. Events at the same time run in the
order they were scheduled, so a run depends only on what was scheduled, never
on wall time or on the host; that is what makes a seed replay a run exactly.

`SimLoop` is also an asyncio event loop: tasks, futures, `asyncio.sleep`,
`wait_for` and timeouts all run on virtual time, and `run_in_executor` (so
`asyncio.to_thread`) runs the function at once on the loop's thread. That is
what lets the simulator host the real service layer, whose operations are
coroutines, and run exactly what a client's request runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from swarmnode.errors import SwarmError

log = logging.getLogger("swarmnode.sim")


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

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` at virtual time `when` (never earlier than now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, fn, args))

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        return self.call_at(self.now + delay, fn, *args)

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


class SimLoop(EventLoop, asyncio.AbstractEventLoop):
    """The virtual-time event queue, speaking asyncio's loop interface."""

    def __init__(self, *, max_events_per_instant: int = 1_000_000) -> None:
        EventLoop.__init__(self, max_events_per_instant=max_events_per_instant)
        self.failures: list[str] = []
        self._running = 0
        self._closed = False

    # --- running -------------------------------------------------------------

    def run_until(self, end: float) -> None:
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        self._running += 1
        try:
            EventLoop.run_until(self, end)
        finally:
            self._running -= 1
            asyncio.events._set_running_loop(previous)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Be asyncio's running loop for the block (what runs outside `run_until` needs it)."""
        previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        try:
            yield
        finally:
            asyncio.events._set_running_loop(previous)

    def run_soon(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a coroutine as a task at the current virtual time."""
        return self.create_task(coro)

    # --- asyncio's loop interface ----------------------------------------------

    def time(self) -> float:
        return self.now

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(max(when, self.now), callback, args, self, context)
        EventLoop.call_at(self, when, _run_handle, handle)
        return handle

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.now + delay, callback, *args, context=context)

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        EventLoop.call_at(self, self.now, _run_handle, handle)
        return handle

    call_soon_threadsafe = call_soon  # type: ignore[assignment]

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        """A cancelled handle simply does not run when its time comes."""

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        """Run at once, on this thread: the simulation has no other threads."""
        fut = self.create_future()
        try:
            fut.set_result(func(*args))
        except BaseException as exc:  # handed to whoever awaits, as an executor would
            fut.set_exception(exc)
        return fut

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return self._running > 0

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Asyncio's report of an error nobody collected (a task's, found when it is freed).

        Logged and kept in `failures`; an exception in an event itself is not
        caught at all and ends `run_until`, as in the plain event queue.
        """
        exc = context.get("exception")
        message = context.get("message", "unhandled error")
        if isinstance(exc, asyncio.CancelledError | SwarmError):
            # A crashed node's unanswered writes, say: an outcome, not a failure.
            return
        log.error("event=sim_callback_failed message=%s", message, exc_info=exc)
        self.failures.append(f"{message}: {exc!r}" if exc is not None else message)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)


def _run_handle(handle: asyncio.Handle) -> None:
    if not handle.cancelled():
        handle._context.run(handle._callback, *handle._args)
