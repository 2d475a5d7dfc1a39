"""Hybrid logical clock: monotonic, close to physical time, guarded against remote skew."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import ClockSkewError, HybridLogicalClock, make_ts, wall_ms
from swarmnode.crdt.hlc import LOGICAL_MASK, logical

OFFSET = 500

# Physical times cluster so that the clock often stands still or runs backwards.
physical = st.integers(1_000, 1_010)
remote = st.builds(make_ts, st.integers(990, 1_600), st.sampled_from([0, 1, LOGICAL_MASK]))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("now"), physical),
        st.tuples(st.just("update"), physical, remote),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_every_timestamp_is_greater_than_all_issued_and_accepted_before(
    steps: list[tuple],
) -> None:
    clock = HybridLogicalClock(max_offset_ms=OFFSET)
    highest = 0
    for step in steps:
        if step[0] == "now":
            ts = clock.now(step[1])
        else:
            _, phys, theirs = step
            try:
                ts = clock.update(theirs, phys)
            except ClockSkewError:
                assert wall_ms(theirs) - phys > OFFSET
                assert clock.last == highest
                continue
            assert ts > theirs
            highest = max(highest, theirs)
        assert ts > highest
        assert wall_ms(ts) >= step[1]
        highest = ts
        assert clock.last == ts


def test_now_follows_physical_time_when_it_moves_forward() -> None:
    clock = HybridLogicalClock()
    assert clock.now(1_000) == make_ts(1_000)
    assert clock.now(1_000) == make_ts(1_000, 1)
    assert clock.now(999) == make_ts(1_000, 2)
    assert clock.now(1_001) == make_ts(1_001)


def test_update_adopts_a_remote_clock_ahead_within_the_offset() -> None:
    clock = HybridLogicalClock(max_offset_ms=OFFSET)
    clock.now(1_000)
    theirs = make_ts(1_000 + OFFSET, 7)
    assert clock.update(theirs, 1_000) == make_ts(1_000 + OFFSET, 8)
    assert clock.now(1_001) == make_ts(1_000 + OFFSET, 9)


def test_update_beyond_the_offset_raises_and_leaves_the_clock_unchanged() -> None:
    clock = HybridLogicalClock(max_offset_ms=OFFSET)
    before = clock.now(1_000)
    with pytest.raises(ClockSkewError) as raised:
        clock.update(make_ts(1_000 + OFFSET + 1), 1_000)
    assert raised.value.ahead_ms == OFFSET + 1
    assert clock.last == before
    assert clock.now(1_000) == make_ts(1_000, 1)


def test_update_with_a_remote_clock_behind_keeps_local_time() -> None:
    clock = HybridLogicalClock()
    clock.now(1_000)
    assert clock.update(make_ts(10, 5), 1_000) == make_ts(1_000, 1)
    assert clock.update(make_ts(10, 5), 1_002) == make_ts(1_002)


def test_a_full_logical_counter_rolls_into_the_next_millisecond() -> None:
    clock = HybridLogicalClock(last=make_ts(1_000, LOGICAL_MASK - 1))
    assert clock.now(1_000) == make_ts(1_000, LOGICAL_MASK)
    assert clock.now(1_000) == make_ts(1_001, 0)
    assert clock.now(1_000) == make_ts(1_001, 1)
    assert clock.update(make_ts(1_001, LOGICAL_MASK), 1_000) == make_ts(1_002, 0)


@given(st.integers(0, 1 << 40), st.integers(0, LOGICAL_MASK))
def test_a_timestamp_splits_back_into_its_physical_and_logical_parts(w: int, n: int) -> None:
    assert wall_ms(make_ts(w, n)) == w
    assert logical(make_ts(w, n)) == n


def test_a_negative_offset_is_refused() -> None:
    with pytest.raises(ValueError):
        HybridLogicalClock(max_offset_ms=-1)
