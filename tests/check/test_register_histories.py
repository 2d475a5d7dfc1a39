"""Small histories whose answers are known by hand, checked by the search.

Each case says why it is or is not linearizable; every one is also judged by
brute force over all real-time-respecting orders, so the expected answers
are not taken on trust either.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from swarmnode.check import check_history

from .histories import REGISTER, Ops, brute_force


def sequential_write_then_read() -> Ops:
    h = Ops()
    h.write(1, at=(0, 1))
    h.read(1, at=(2, 3))
    return h


def stale_read() -> Ops:
    # write 2 completed before the read began: the read cannot still see 1.
    h = Ops()
    h.write(1, at=(0, 1))
    h.write(2, at=(2, 3))
    h.read(1, at=(4, 5))
    return h


def read_overlapping_a_write_sees_the_old_value() -> Ops:
    h = Ops()
    h.write(1, at=(0, 1))
    h.write(2, at=(2, 5))
    h.read(1, at=(3, 4))
    return h


def read_overlapping_a_write_sees_the_new_value() -> Ops:
    h = Ops()
    h.write(1, at=(0, 1))
    h.write(2, at=(2, 5))
    h.read(2, at=(3, 4))
    return h


def reads_new_then_old_during_one_write() -> Ops:
    # Both reads overlap the write, but once one read saw 2 a later one cannot see 1.
    h = Ops()
    h.write(1, at=(0, 1))
    h.write(2, at=(2, 9))
    h.read(2, at=(3, 4))
    h.read(1, at=(5, 6))
    return h


def read_of_an_absent_key() -> Ops:
    h = Ops()
    h.read(None, at=(0, 1))
    h.write(1, at=(2, 3))
    return h


def absent_after_a_completed_write() -> Ops:
    h = Ops()
    h.write(1, at=(0, 1))
    h.read(None, at=(2, 3))
    return h


def absent_during_the_first_write() -> Ops:
    h = Ops()
    h.write(1, at=(0, 3))
    h.read(None, at=(1, 2))
    return h


def read_of_a_value_never_written() -> Ops:
    h = Ops()
    h.write(1, at=(0, 1))
    h.read(7, at=(0, 2))
    return h


def concurrent_cas_from_the_same_value_both_swap() -> Ops:
    # Only one of two compare-and-sets from 0 can find 0.
    h = Ops()
    h.write(0, at=(0, 1))
    h.cas(0, 1, at=(2, 5))
    h.cas(0, 2, at=(3, 6))
    return h


def concurrent_cas_chain() -> Ops:
    h = Ops()
    h.write(0, at=(0, 1))
    h.cas(1, 2, at=(2, 5))
    h.cas(0, 1, at=(3, 6))
    h.read(2, at=(7, 8))
    return h


def concurrent_cas_one_swaps_one_mismatches() -> Ops:
    h = Ops()
    h.write(0, at=(0, 1))
    h.cas(0, 1, at=(2, 5))
    h.cas(0, 2, swapped=False, at=(3, 6))
    h.read(1, at=(7, 8))
    return h


def cas_mismatch_where_the_value_matched() -> Ops:
    # The value was 0 throughout the cas, so its compare cannot have failed.
    h = Ops()
    h.write(0, at=(0, 1))
    h.cas(0, 1, swapped=False, at=(2, 3))
    return h


def cas_creates_an_absent_key() -> Ops:
    h = Ops()
    h.cas(None, 5, at=(0, 1))
    h.read(5, at=(2, 3))
    return h


def unknown_write_takes_effect_late() -> Ops:
    # The write's outcome is unknown: it may land at any point after its invocation,
    # here between the two reads, long after anyone stopped waiting for it.
    h = Ops()
    h.write(1, at=(0, None))
    h.read(None, at=(2, 3))
    h.read(1, at=(10, 11))
    return h


def unknown_write_never_takes_effect() -> Ops:
    h = Ops()
    h.write(1, at=(0, None))
    h.read(None, at=(2, 3))
    h.read(None, at=(4, 5))
    return h


def unknown_write_cannot_be_undone() -> Ops:
    h = Ops()
    h.write(1, at=(0, None))
    h.read(1, at=(2, 3))
    h.read(None, at=(4, 5))
    return h


def unknown_write_cannot_act_before_its_invocation() -> Ops:
    h = Ops()
    h.read(1, at=(0, 1))
    h.write(1, at=(2, None))
    return h


def unknown_cas_may_or_may_not_swap() -> Ops:
    h = Ops()
    h.write(0, at=(0, 1))
    h.cas(0, 1, at=(2, None))
    h.read(0, at=(3, 4))
    h.read(1, at=(5, 6))
    return h


def unknown_read_constrains_nothing() -> Ops:
    h = Ops()
    h.write(1, at=(0, 1))
    h.read(None, at=(2, None))
    h.read(1, at=(3, 4))
    return h


CASES: list[tuple[Callable[[], Ops], bool]] = [
    (sequential_write_then_read, True),
    (stale_read, False),
    (read_overlapping_a_write_sees_the_old_value, True),
    (read_overlapping_a_write_sees_the_new_value, True),
    (reads_new_then_old_during_one_write, False),
    (read_of_an_absent_key, True),
    (absent_after_a_completed_write, False),
    (absent_during_the_first_write, True),
    (read_of_a_value_never_written, False),
    (concurrent_cas_from_the_same_value_both_swap, False),
    (concurrent_cas_chain, True),
    (concurrent_cas_one_swaps_one_mismatches, True),
    (cas_mismatch_where_the_value_matched, False),
    (cas_creates_an_absent_key, True),
    (unknown_write_takes_effect_late, True),
    (unknown_write_never_takes_effect, True),
    (unknown_write_cannot_be_undone, False),
    (unknown_write_cannot_act_before_its_invocation, False),
    (unknown_cas_may_or_may_not_swap, True),
    (unknown_read_constrains_nothing, True),
]


@pytest.mark.parametrize(("build", "expected"), CASES, ids=[c[0].__name__ for c in CASES])
def test_hand_made_history(build: Callable[[], Ops], expected: bool) -> None:
    ops = build().ops
    assert brute_force(ops) is expected
    result = check_history(ops, REGISTER)
    assert result.linearizable is expected
    assert (result.counterexample is None) is expected


def test_keys_are_checked_apart_and_the_smallest_failing_key_is_reported() -> None:
    h = Ops()
    # Key "a": fine on its own, though it would contradict key "b" if they were one register.
    h.write(1, at=(0, 1), key="a")
    h.read(1, at=(2, 3), key="a")
    # Key "b": a stale read among four operations.
    h.write(1, at=(0, 1), key="b")
    h.write(2, at=(2, 3), key="b")
    h.read(2, at=(4, 5), key="b")
    h.read(1, at=(6, 7), key="b")
    # Key "c": a stale read among three operations: the smaller failing key.
    h.write(1, at=(0, 1), key="c")
    h.write(2, at=(2, 3), key="c")
    h.read(1, at=(4, 5), key="c")
    result = check_history(h.ops, REGISTER)
    assert result.linearizable is False
    assert result.counterexample is not None
    assert result.counterexample.key == "c"
    assert result.stats.keys == 3
    only_a = [op for op in h.ops if op.key == "a"]
    assert check_history(only_a, REGISTER).linearizable is True


def test_shrunk_counterexample_is_small_still_fails_and_names_the_stale_read() -> None:
    h = Ops()
    h.write(1, at=(0, 1))
    for t in range(2, 40, 2):
        h.read(1, at=(t, t + 1))
    h.write(2, at=(40, 41))
    h.read(2, at=(42, 43))
    stale = h.read(1, at=(44, 45))
    h.read(2, at=(46, 47))
    result = check_history(h.ops, REGISTER, explain=True)
    cx = result.counterexample
    assert cx is not None and cx.shrunk
    assert cx.culprit == stale
    assert [(op.f, op.input, op.output) for op in cx.operations] == [
        ("write", ("write", 1), None),
        ("write", ("write", 2), None),
        ("read", ("read", None), 1),
    ]
    assert check_history(cx.operations, REGISTER).linearizable is False
    without_culprit = [op for op in cx.operations if op != stale]
    assert check_history(without_culprit, REGISTER).linearizable is True
    assert [op.input for op in cx.linearization or []] == [("write", 1), ("write", 2)]
