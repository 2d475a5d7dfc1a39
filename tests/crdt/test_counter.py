"""PN-counter: exact totals, and resets that floor only what they observed."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import PNCounter
from swarmnode.crdt.counter import join_expiry

from .strategies import nodes


def bump(state: PNCounter, node: str, by: int) -> PNCounter:
    return state.join(state.increment(node, by, None))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(nodes, st.integers(-3, 5)), max_size=20), st.randoms())
def test_the_value_is_every_increment_minus_every_decrement_in_any_merge_order(
    ops: list[tuple[str, int]], rnd: random.Random
) -> None:
    replicas = {node: PNCounter() for node in "abc"}
    deltas = []
    for node, by in ops:
        delta = replicas[node].increment(node, by, None)
        replicas[node] = replicas[node].join(delta)
        deltas.append(delta)
    rnd.shuffle(deltas)
    merged = PNCounter()
    for delta in deltas + deltas[: len(deltas) // 2]:
        merged = merged.join(delta)
    assert merged.value() == sum(by for _, by in ops)
    full = PNCounter()
    for state in replicas.values():
        full = full.join(state)
    assert merged == full


def test_an_increment_concurrent_with_a_reset_survives_it() -> None:
    base = bump(bump(PNCounter(), "a", 5), "b", -2)
    reset = base.reset()
    concurrent = base.increment("a", 3, None)
    assert base.join(reset).join(concurrent).value() == 3
    assert base.join(concurrent).join(reset).value() == 3


def test_a_reset_zeroes_exactly_what_it_observed_even_when_it_arrives_first() -> None:
    at_a = bump(bump(PNCounter(), "a", 2), "a", 2)
    seen_by_b = PNCounter().join(at_a)
    reset = seen_by_b.reset()
    later = at_a.increment("a", 1, None)
    elsewhere = PNCounter().join(reset).join(later)
    assert elsewhere.value() == 1
    assert not PNCounter().join(reset).live()


def test_resets_are_not_last_writer_wins_each_floors_only_what_it_saw() -> None:
    a, b = bump(PNCounter(), "a", 4), bump(PNCounter(), "b", 6)
    both = a.join(b)
    assert both.join(a.reset()).value() == 6
    assert both.join(b.reset()).join(a.reset()).value() == 0
    assert both.join(b.reset()).join(a.reset()).join(b.increment("b", 1, None)).value() == 1


def test_a_node_seen_at_zero_on_one_side_joins_the_same_from_both_sides() -> None:
    seen_at_zero = PNCounter(n={"a": 0})
    assert seen_at_zero.join(PNCounter()) == PNCounter().join(seen_at_zero)


def test_expiry_is_the_latest_writes_ttl_whatever_order_it_arrives_in() -> None:
    early, late = (5, 100), (9, 20)
    assert join_expiry(early, late) == join_expiry(late, early) == late
    assert join_expiry((5, None), (9, 20)) == (9, 20)  # a later TTL ends "never"
    assert join_expiry((5, 20), (5, None)) == (5, None)  # same write instant: never wins
    assert join_expiry((0, 0), (3, 7)) == (3, 7)


def test_after_a_delete_the_next_write_alone_decides_the_expiry() -> None:
    forever = PNCounter().increment("a", 1, None, ts=10)
    deleted = forever.join(forever.reset())
    again = deleted.join(deleted.increment("a", 1, 500, ts=20))
    assert again.value() == 1
    assert again.visible(499) and not again.visible(500)


def test_visible_only_while_something_lies_above_the_floors_and_before_expiry() -> None:
    counter = PNCounter().increment("a", 1, 50)
    assert counter.visible(49)
    assert not counter.visible(50)
    assert not counter.join(counter.reset()).visible(0)
    assert not PNCounter().increment("a", 0, None).visible(0)
