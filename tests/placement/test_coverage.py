"""Covering sets: every partition asked exactly once, locally where possible; a watch's
covering set moves only the partitions whose source can no longer serve them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swarmnode.placement.coverage import cover, recover
from swarmnode.placement.rendezvous import owner_table

members = [f"n{i}" for i in range(7)]


@given(st.integers(1, 4), st.sets(st.sampled_from(members), max_size=6), st.sampled_from(members))
def test_every_partition_is_covered_once_by_one_of_its_candidates(r, down, local) -> None:
    table = owner_table("ns", 64, members, r)
    candidates = {p: [m for m in owners if m not in down] for p, owners in enumerate(table)}
    chosen, missing = cover(candidates, local=local)
    asked = [p for parts in chosen.values() for p in parts]
    assert sorted(asked + missing) == list(range(64))
    assert len(set(asked)) == len(asked)
    for node, parts in chosen.items():
        assert all(node in candidates[p] for p in parts)
    assert missing == [p for p, c in candidates.items() if not c]


def test_the_local_node_answers_for_everything_it_holds() -> None:
    table = owner_table("ns", 64, members, 2)
    candidates = dict(enumerate(table))
    chosen, _ = cover(candidates, local="n3")
    assert chosen["n3"] == [p for p, owners in enumerate(table) if "n3" in owners]


def test_few_nodes_are_asked() -> None:
    # With R = N every node holds everything: one node answers for all.
    table = owner_table("ns", 64, members[:3], 3)
    chosen, _ = cover(dict(enumerate(table)))
    assert len(chosen) == 1


def test_load_breaks_ties_toward_the_idle_node() -> None:
    candidates = {0: ["a", "b"]}
    assert cover(candidates, load={"a": 5, "b": 0})[0] == {"b": [0]}
    assert cover(candidates, load={"a": 0, "b": 5})[0] == {"a": [0]}


@given(st.integers(1, 4), st.sets(st.sampled_from(members), max_size=6), st.sampled_from(members))
def test_a_watch_keeps_every_source_that_can_still_serve(r, down, local) -> None:
    table = owner_table("ns", 64, members, r)
    before = {p: owners[-1] for p, owners in enumerate(table)}  # not what cover would pick
    candidates = {p: [m for m in owners if m not in down] for p, owners in enumerate(table)}
    moved, missing = recover(before, candidates, local=local)
    reassigned = {p: node for node, parts in moved.items() for p in parts}
    for p, source in before.items():
        if source in candidates[p]:
            assert p not in reassigned and p not in missing  # kept: no gap for it
        elif candidates[p]:
            assert reassigned[p] in candidates[p]
        else:
            assert p in missing


def test_a_watch_takes_partitions_without_a_source_locally_first() -> None:
    candidates = {0: ["a", "b"], 1: ["b", "c"], 2: ["c"]}
    moved, missing = recover({0: None, 1: "c", 2: None}, candidates, local="a")
    assert moved == {"a": [0], "c": [2]} and missing == []
