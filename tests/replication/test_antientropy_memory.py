"""The in-memory EntrySource keeps the contract the storage layer must keep."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.replication.antientropy_memory import MemoryEntrySource, state_digest
from swarmnode.replication.merkle import MerkleTree

SHAPE = {"fanout": 4, "depth": 2}


@settings(max_examples=100, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.text(max_size=4), st.none() | st.binary(min_size=1, max_size=3)), max_size=40
    )
)
def test_trees_follow_every_put_and_remove(writes: list[tuple[str, bytes | None]]) -> None:
    source = MemoryEntrySource(max, **SHAPE)
    for key, state in writes:
        if state is None:
            source.remove("ns", key)
        else:
            source.put("ns", key, state)
    held = source.items("ns")
    expected = MerkleTree.build(((k, state_digest(s)) for k, s in held.items()), **SHAPE)
    assert source.tree("ns") in (expected, None)
    assert source.entries_in_leaves("ns", 0, 15) == sorted(
        ((k, state_digest(s)) for k, s in held.items()), key=lambda e: expected.position(e[0])
    )


def test_a_leaf_range_lists_exactly_its_entries_in_index_order() -> None:
    pairs = [(f"key/{i}", b"%d" % i) for i in range(3000)]
    source = MemoryEntrySource.build(max, {"ns": pairs})
    tree = source.tree("ns")
    assert tree is not None
    rng = random.Random(4)
    for _ in range(20):
        first = rng.randrange(65536)
        last = min(65535, first + rng.choice([0, 10, 5000, 65536]))
        listed = source.entries_in_leaves("ns", first, last)
        expected = sorted(
            ((k, state_digest(s)) for k, s in pairs if first <= tree.leaf_of(k) <= last),
            key=lambda e: tree.index_key(e[0]),
        )
        assert listed == expected


def test_apply_joins_and_counts_only_real_changes() -> None:
    source = MemoryEntrySource(max)
    source.put("ns", "k", b"m")
    assert source.apply("ns", [("k", b"a"), ("k", b"z"), ("new", b"n")]) == 2
    assert source.items("ns") == {"k": b"z", "new": b"n"}
    assert source.states("ns", ["new", "absent", "k"]) == [("new", b"n"), ("k", b"z")]
    assert source.states("unknown", ["k"]) == []
    assert source.entries_in_leaves("unknown", 0, 65535) == []
