"""Which partition a key belongs to, and where a partition sits in the Merkle tree.

The partition of a key is the top `log2(partitions)` bits of the 64-bit hash
that also selects the key's Merkle leaf (`replication.merkle.leaf_of`). So the
keys of one partition fill one contiguous run of leaves: the partition's Merkle
tree is a subtree of the namespace's tree (or a run of sibling subtrees when
the partition bits do not fall on a level boundary), and the store's Merkle
index, ordered by leaf, lists a partition as one range. Nothing about the
partitioning has to be stored with an entry, and the hash is the same on every
node and in every version.
"""

from __future__ import annotations

from swarmnode.errors import BadRequest
from swarmnode.replication.merkle import leaf_of

MAX_PARTITIONS = 4096
"""Partitions of one namespace at most: 2^12, within the default tree's 2^16 leaves."""
DEFAULT_PARTITIONS = 256
"""Partitions of a sharded namespace unless its creator chose: with R = 3, about 2.5 per
node at 300 nodes and 128 per node at 6, enough for an even spread at a few hundred."""


def partition_bits(partitions: int) -> int:
    """log2 of a partition count (a power of two)."""
    return partitions.bit_length() - 1


def check_partitions(value: object, leaf_bits: int = 16) -> int:
    """A partition count a namespace may have: a power of two, 1 to MAX_PARTITIONS, and no
    more than the Merkle tree has leaves."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("partitions must be an integer (a power of two)")
    top = min(MAX_PARTITIONS, 1 << leaf_bits)
    if value < 1 or value > top or value & (value - 1):
        raise BadRequest(f"partitions must be a power of two between 1 and {top}, not {value}")
    return value


def partition_of(key: str, partitions: int) -> int:
    """The partition of `key` in a namespace of `partitions` partitions."""
    return leaf_of(key, partition_bits(partitions))


def partition_leaves(partition: int, partitions: int, leaf_bits: int) -> tuple[int, int]:
    """First and last Merkle leaf (inclusive) holding the keys of `partition`."""
    shift = leaf_bits - partition_bits(partitions)
    if shift < 0:
        raise ValueError(f"{partitions} partitions need more than 2^{leaf_bits} leaves")
    return partition << shift, ((partition + 1) << shift) - 1


def partition_nodes(
    partition: int, partitions: int, fanout: int, depth: int
) -> list[tuple[int, int]]:
    """The Merkle tree nodes (level, index) that together cover exactly `partition`.

    With fanout 16, 256 partitions are the 256 nodes of level 2; 32 partitions are
    pairs of level-2 nodes; one partition is the root.
    """
    bits = partition_bits(partitions)
    step = fanout.bit_length() - 1
    level = -(-bits // step)
    if level > depth:
        raise ValueError(f"{partitions} partitions need a tree deeper than {depth}")
    spread = level * step - bits
    first = partition << spread
    return [(level, index) for index in range(first, first + (1 << spread))]
