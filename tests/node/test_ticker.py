"""The real runtime's ticker sleeps until the node's next deadline, and a step that brings
a deadline closer wakes it sooner: an idle node is not woken every tick_interval, and a
busy one still runs its timers on time."""

from __future__ import annotations

import asyncio
import time

from swarmnode.runtime.ticker import DeadlineTicker


def test_a_step_that_brings_the_deadline_closer_wakes_the_sleeping_ticker():
    async def run() -> int:
        due = [time.monotonic() + 3600.0]
        ticked = asyncio.Event()
        ticks = []

        def tick() -> None:
            ticks.append(time.monotonic())
            due[0] = time.monotonic() + 3600.0
            ticked.set()

        ticker = DeadlineTicker(asyncio.get_running_loop(), 0.001, tick, lambda: due[0])
        ticker.start()
        assert len(ticks) == 1  # the first tick is at once; the next is an hour away
        ticked.clear()
        due[0] = time.monotonic()  # a step queued work due now
        ticker.stepped()
        await asyncio.wait_for(ticked.wait(), 30.0)
        ticker.stop()
        return len(ticks)

    assert asyncio.run(run()) == 2

