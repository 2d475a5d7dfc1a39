"""Add-wins OR-set: a remove takes exactly the adds its issuer saw; deltas name what they touch."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import Entry, ORSet, encode_entry

from .histories import join_named_members
from .strategies import expiries, members, nodes, orsets


def add(s: ORSet, node: str, *ms: str) -> ORSet:
    return s.join(s.add(node, ms, None))


def test_a_concurrent_add_wins_over_a_remove() -> None:
    base = add(ORSet(), "a", "x")
    removed = base.remove(["x"])
    re_added = base.add("b", ["x"], None)
    assert base.join(removed).join(re_added).members() == ["x"]
    assert base.join(re_added).join(removed).members() == ["x"]


def test_a_remove_takes_only_the_adds_its_issuer_saw() -> None:
    at_a = add(ORSet(), "a", "x")
    at_b = add(ORSet(), "b", "x")
    remove_at_a = at_a.remove(["x"])
    assert at_a.join(at_b).join(remove_at_a).members() == ["x"]
    assert ORSet().remove(["x"]).elems == {}


def test_a_remove_that_arrives_before_the_add_it_saw_still_removes_it() -> None:
    added = ORSet().add("a", ["x"], None)
    removed = ORSet().join(added).remove(["x"])
    assert ORSet().join(removed).join(added).members() == []


def test_a_member_removed_then_added_again_is_present() -> None:
    s = add(ORSet(), "a", "x", "y")
    s = s.join(s.remove(["x"]))
    assert s.members() == ["y"]
    assert add(s, "b", "x").members() == ["x", "y"]


def test_removals_leave_no_per_member_tombstone() -> None:
    s = add(ORSet(), "a", "x", "y")
    s = s.join(s.clear())
    assert s.elems == {}
    assert not s.live()


def test_a_delta_that_names_a_member_differs_from_one_that_does_not() -> None:
    # Equal must mean identical bytes; the store acts on the names.
    s = add(ORSet(), "a", "x")
    removal = s.remove(["x"])
    unnamed = ORSet({}, removal.cc)
    assert removal != unnamed
    assert encode_entry(Entry(orset=removal)) != encode_entry(Entry(orset=unnamed))
    assert ORSet().join(removal) == unnamed


@st.composite
def set_deltas(draw: st.DrawFn) -> tuple[Entry, Entry]:
    """A stored set and a delta some replica made from its own view of it."""
    state = Entry(orset=draw(orsets()))
    view = Entry(orset=draw(orsets())).join(state) if draw(st.booleans()) else state
    now = draw(st.integers(0, 6))
    ms = draw(st.lists(members, min_size=1, max_size=3))
    op = draw(st.sampled_from(["sadd", "srem", "delete", "expire"]))
    if op == "sadd":
        delta = view.sadd(5, draw(nodes), ms, draw(expiries), now)
    elif op == "srem":
        delta = view.srem(5, ms)
    elif op == "delete":
        delta = view.delete(5, draw(nodes))
    else:
        delta = view.expire(now) or Entry()
    return state, delta


@settings(max_examples=300, deadline=None)
@given(set_deltas())
def test_every_set_delta_names_each_member_it_changes(pair: tuple[Entry, Entry]) -> None:
    # The store applies a delta by loading only the members it names.
    state, delta = pair
    if delta.orset is not None:
        assert join_named_members(state.orset, delta.orset) == state.join(delta).orset
