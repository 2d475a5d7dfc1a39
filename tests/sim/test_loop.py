"""Virtual time runs events in time order, ties in the order they were scheduled."""

from __future__ import annotations

import pytest

from swarmnode.sim.loop import EventLoop, SimulationStalled


def test_events_run_in_time_order_and_ties_in_scheduling_order():
    loop = EventLoop()
    seen = []
    loop.call_at(2.0, seen.append, "late")
    loop.call_at(1.0, seen.append, "first at 1")
    loop.call_at(1.0, seen.append, "second at 1")
    loop.call_later(0.5, lambda: loop.call_later(0.5, seen.append, "scheduled from an event"))
    loop.run_until(1.5)
    assert seen == ["first at 1", "second at 1", "scheduled from an event"]
    assert loop.now == 1.5
    loop.run_until(3.0)
    assert seen[-1] == "late"


def test_an_event_asked_for_in_the_past_runs_now():
    loop = EventLoop()
    loop.run_until(5.0)
    seen = []
    loop.call_at(1.0, lambda: seen.append(loop.now))
    loop.run_until(5.0)
    assert seen == [5.0]


def test_events_that_reschedule_themselves_at_the_same_instant_are_caught():
    loop = EventLoop(max_events_per_instant=100)

    def again() -> None:
        loop.call_later(0.0, again)

    loop.call_at(1.0, again)
    with pytest.raises(SimulationStalled):
        loop.run_until(2.0)
