"""Causal contexts behave exactly like the plain sets of dots they compress."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import CausalContext

from .strategies import causal_contexts, nodes

dot_sets = st.sets(st.tuples(nodes, st.integers(1, 6)), max_size=10)
ccs = settings(max_examples=300, deadline=None)


def dot_set(cc: CausalContext) -> set[tuple[str, int]]:
    return set(cc.dots())


@ccs
@given(dot_sets, dot_sets)
def test_a_context_is_the_set_of_its_dots_however_they_arrive(
    first: set[tuple[str, int]], second: set[tuple[str, int]]
) -> None:
    one_by_one = CausalContext()
    for dot in sorted(first, reverse=True):
        one_by_one.add(dot)
    at_once = CausalContext.of(first)
    assert one_by_one == at_once
    assert dot_set(at_once) == first
    merged = at_once.join(CausalContext.of(second))
    assert dot_set(merged) == first | second
    assert merged == CausalContext.of(first | second)


@ccs
@given(causal_contexts(), st.tuples(nodes, st.integers(0, 8)))
def test_membership_max_counter_and_next_dot_match_the_set(
    cc: CausalContext, probe: tuple[str, int]
) -> None:
    dots = dot_set(cc)
    if probe[1] >= 1:
        assert (probe in cc) == (probe in dots)
    node = probe[0]
    top = max((n for d, n in dots if d == node), default=0)
    assert cc.max_counter(node) == top
    assert cc.next_dot(node) == (node, top + 1)
    assert cc.next_dot(node) not in cc


@ccs
@given(causal_contexts(), causal_contexts())
def test_covers_is_set_inclusion(a: CausalContext, b: CausalContext) -> None:
    assert a.covers(b) == (dot_set(b) <= dot_set(a))
    assert a.join(b).covers(a)
    assert a.join(b).covers(b)


@ccs
@given(causal_contexts())
def test_the_compressed_form_is_canonical(cc: CausalContext) -> None:
    # No cloud dot could be folded into the vector, and copying changes nothing.
    for node, n in cc.cloud:
        assert n > cc.vv.get(node, 0) + 1
    assert all(n >= 1 for n in cc.vv.values())
    assert cc.copy() == cc
    assert hash(cc.copy()) == hash(cc)


def test_a_gap_is_remembered_until_the_missing_dot_arrives() -> None:
    cc = CausalContext.of([("a", 1), ("a", 3)])
    assert ("a", 2) not in cc
    assert cc.vv == {"a": 1}
    assert cc.cloud == {("a", 3)}
    cc.add(("a", 2))
    assert cc.vv == {"a": 3}
    assert not cc.cloud
