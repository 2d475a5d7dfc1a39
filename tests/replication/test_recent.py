"""Recently seen deltas: copies within the window are recognised, later ones are not."""

from __future__ import annotations

import pytest

from swarmnode.replication.recent import RecentDeltas

D = ("ns", "k", b"delta")


def seen(recent: RecentDeltas, now: float, delta: tuple[str, str, bytes]) -> bool:
    return not recent.split(now, [delta])[0]


def test_a_copy_within_the_window_is_seen_and_one_after_it_is_not():
    recent = RecentDeltas(window=5.0, capacity=100)
    assert not seen(recent, 0.0, D)
    assert seen(recent, 4.9, D)
    assert not seen(recent, 5.1, D)  # forgotten: judged by the merge rules again
    assert seen(recent, 5.2, D)


def test_the_same_key_with_other_bytes_is_another_delta():
    recent = RecentDeltas(window=5.0, capacity=100)
    recent.remember(0.0, D)
    assert not seen(recent, 0.1, ("ns", "k", b"newer"))
    assert not seen(recent, 0.1, ("other", "k", b"delta"))
    assert seen(recent, 0.2, D)


def test_capacity_forgets_the_oldest_first():
    recent = RecentDeltas(window=60.0, capacity=3)
    for i in range(4):
        recent.remember(float(i), ("ns", f"k{i}", b"x"))
    assert len(recent) == 3
    assert not seen(recent, 4.0, ("ns", "k0", b"x"))
    assert seen(recent, 4.0, ("ns", "k3", b"x"))


def test_forget_lets_the_next_copy_through():
    recent = RecentDeltas(window=5.0, capacity=100)
    recent.remember(0.0, D)
    recent.forget(D)
    assert not seen(recent, 0.1, D)


def test_a_zero_window_remembers_nothing():
    recent = RecentDeltas(window=0.0, capacity=100)
    recent.remember(0.0, D)
    assert not seen(recent, 0.0, D)
    assert len(recent) == 0


def test_negative_bounds_are_refused():
    with pytest.raises(ValueError):
        RecentDeltas(window=-1.0, capacity=1)


def test_a_message_keeps_its_fresh_deltas_in_order_and_a_repeat_once():
    recent = RecentDeltas(window=5.0, capacity=100)
    a, b, c = ("ns", "a", b"1"), ("ns", "b", b"2"), ("ns", "c", b"3")
    recent.remember(0.0, b)
    assert recent.split(0.1, [a, b, c, a]) == ([a, c], [b, a])
    assert recent.split(0.2, [c, a, b]) == ([], [c, a, b])


def test_a_message_larger_than_the_capacity_leaves_the_newest_remembered():
    recent = RecentDeltas(window=60.0, capacity=2)
    batch = [("ns", f"k{i}", b"x") for i in range(4)]
    assert recent.split(0.0, batch) == (batch, [])
    assert len(recent) == 2
    assert recent.split(1.0, batch) == (batch[:2], batch[2:])
