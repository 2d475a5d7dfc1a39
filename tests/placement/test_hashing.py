"""A key's partition: stable, uniform, and the same leaves as its Merkle position."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.errors import BadRequest
from swarmnode.placement.hashing import (
    check_partitions,
    partition_leaves,
    partition_nodes,
    partition_of,
)
from swarmnode.replication.merkle import DEFAULT_LEAF_BITS, MerkleTree, leaf_of, leaf_range

keys = st.text(min_size=1, max_size=40).filter(lambda k: "\x00" not in k)
counts = st.sampled_from([1, 2, 4, 16, 32, 256, 1024, 4096])


def test_partition_of_is_fixed_for_ever() -> None:
    # The placement of every stored key depends on these values: they may never change.
    assert [partition_of(k, 256) for k in ("a", "user:1", "ключ", "x" * 500)] == [187, 126, 12, 137]
    assert partition_of("a", 1) == 0
    assert partition_of("a", 4096) >> 4 == partition_of("a", 256)


@given(keys, counts)
def test_a_partitions_keys_lie_in_its_leaves(key: str, partitions: int) -> None:
    p = partition_of(key, partitions)
    first, last = partition_leaves(p, partitions, DEFAULT_LEAF_BITS)
    assert 0 <= p < partitions
    assert first <= leaf_of(key) <= last


@given(counts, st.data())
def test_partition_nodes_cover_exactly_the_partitions_leaves(partitions: int, data) -> None:
    p = data.draw(st.integers(0, partitions - 1))
    tree = MerkleTree()
    covered = []
    for level, index in partition_nodes(p, partitions, tree.fanout, tree.depth):
        covered.append(leaf_range(level, index, tree.fanout, tree.depth))
    covered.sort()
    assert (covered[0][0], covered[-1][1]) == partition_leaves(p, partitions, DEFAULT_LEAF_BITS)
    for (_, a_last), (b_first, _) in itertools.pairwise(covered):
        assert b_first == a_last + 1


def test_keys_spread_evenly_over_partitions() -> None:
    n, partitions = 64_000, 64
    seen = [0] * partitions
    for i in range(n):
        seen[partition_of(f"key-{i}", partitions)] += 1
    expected = n / partitions
    assert max(seen) < expected * 1.15 and min(seen) > expected * 0.85


@pytest.mark.parametrize("bad", [0, 3, 5000, 8192, -1, True, 2.0, "16"])
def test_a_partition_count_is_a_power_of_two_in_range(bad: object) -> None:
    with pytest.raises(BadRequest):
        check_partitions(bad)


def test_partition_counts_the_tree_can_hold() -> None:
    assert check_partitions(4096) == 4096
    with pytest.raises(BadRequest):
        check_partitions(64, leaf_bits=4)
