"""The Merkle tree: incremental updates, what its hashes tell, and its storage key ranges."""

from __future__ import annotations

import random
from functools import reduce
from hashlib import blake2b
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.replication.merkle import (
    EMPTY_HASH,
    LEAF_INDEX_BYTES,
    MerkleTree,
    entry_hash,
    index_key,
    leaf_of,
    leaf_range,
    position,
)

SMALL = {"fanout": 4, "depth": 3}

keys = st.text(max_size=6)
digests = st.binary(min_size=16, max_size=16)
present_digests = st.sampled_from([bytes([i]) * 16 for i in range(4)]) | digests
maybe_digests = st.none() | present_digests


def xor(values: list[bytes]) -> bytes:
    return reduce(lambda a, b: bytes(x ^ y for x, y in zip(a, b, strict=True)), values, EMPTY_HASH)


@settings(max_examples=200, deadline=None)
@given(writes=st.lists(st.tuples(st.sampled_from("abcdefgh") | keys, maybe_digests), max_size=60))
def test_incremental_updates_equal_a_fresh_build(writes: list[tuple[str, bytes | None]]) -> None:
    tree = MerkleTree(**SMALL)
    held: dict[str, bytes] = {}
    for key, digest in writes:
        tree.update(key, held.get(key), digest)
        if digest is None:
            held.pop(key, None)
        else:
            held[key] = digest
    assert tree == MerkleTree.build(held.items(), **SMALL)
    assert tree.count() == len(held)


@settings(max_examples=200, deadline=None)
@given(
    a=st.dictionaries(st.sampled_from("abcdefgh"), present_digests, max_size=8),
    b=st.dictionaries(st.sampled_from("abcdefgh"), present_digests, max_size=8),
)
def test_roots_are_equal_exactly_when_the_entry_sets_are(
    a: dict[str, bytes], b: dict[str, bytes]
) -> None:
    root_a = MerkleTree.build(a.items(), **SMALL).root()
    root_b = MerkleTree.build(b.items(), **SMALL).root()
    assert (root_a == root_b) == (a == b)


def test_removing_every_entry_leaves_the_empty_tree() -> None:
    entries = [(f"k{i}", blake2b(b"%d" % i, digest_size=16).digest()) for i in range(500)]
    tree = MerkleTree.build(entries)
    for key, digest in entries:
        tree.update(key, digest, None)
    assert tree == MerkleTree()
    assert (tree.root(), tree.count()) == (EMPTY_HASH, 0)


def test_build_ignores_the_order_of_entries() -> None:
    entries = [(f"key-{i}", bytes([i % 256]) * 16) for i in range(3000)]
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    assert MerkleTree.build(entries) == MerkleTree.build(shuffled)


def test_every_interior_node_holds_the_xor_and_count_of_the_entries_under_it() -> None:
    entries = {f"entry/{i}": bytes([i % 251]) * 16 for i in range(400)}
    tree = MerkleTree.build(entries.items(), **SMALL)
    for level in range(tree.depth + 1):
        for index in range(tree.fanout**level):
            first, last = tree.leaf_range(level, index)
            under = [k for k in entries if first <= tree.leaf_of(k) <= last]
            expected = xor([entry_hash(k, entries[k]) for k in under])
            assert tree.node(level, index) == (expected, len(under))
            if level < tree.depth:
                hashes, counts = tree.children(level, index)
                assert len(hashes) == 16 * tree.fanout
                assert sum(counts) == len(under)
                assert xor([hashes[i : i + 16] for i in range(0, len(hashes), 16)]) == expected


def test_a_subtree_is_one_contiguous_run_of_the_storage_index() -> None:
    tree = MerkleTree()
    ordered = sorted((f"user:{i}" for i in range(5000)), key=tree.index_key)
    assert ordered == sorted(ordered, key=tree.position)
    for key in ordered[:50]:
        assert int.from_bytes(tree.index_key(key)[:LEAF_INDEX_BYTES], "big") == tree.leaf_of(key)
    for level in range(1, tree.depth + 1):
        index = tree.leaf_of(ordered[1234]) >> (4 * (tree.depth - level))
        first, last = tree.leaf_range(level, index)
        inside = [i for i, k in enumerate(ordered) if first <= tree.leaf_of(k) <= last]
        assert inside == list(range(inside[0], inside[-1] + 1))


def test_leaf_ranges_of_one_level_tile_the_leaves() -> None:
    for level in range(5):
        ranges = [leaf_range(level, i, 16, 4) for i in range(16**level)][:300]
        assert ranges[0][0] == 0
        for (_, last), (first, _) in pairwise(ranges):
            assert first == last + 1
    assert leaf_range(0, 0, 16, 4) == (0, 65535)


def test_module_functions_agree_with_the_default_tree() -> None:
    tree = MerkleTree()
    for key in ("", "a", "ünïcode", "x" * 300):
        assert tree.leaf_of(key) == leaf_of(key) < 65536
        assert tree.index_key(key) == index_key(key)
        assert tree.position(key) == position(key)


def test_split_leaves_bounds_one_read_by_key_count() -> None:
    tree = MerkleTree.build(((f"k{i}", bytes(16)) for i in range(20000)), **SMALL)
    first, last = 0, 63
    while first <= last:
        stop = tree.split_leaves(first, last, 1000)
        assert first <= stop <= last
        held = tree.keys_in_leaves(first, stop)
        assert held <= 1000 or stop == first
        if stop < last:
            assert tree.keys_in_leaves(first, stop + 1) > 1000
        first = stop + 1


def test_a_small_tree_holds_only_its_leaves_and_a_large_one_is_fixed_by_its_shape() -> None:
    small = MerkleTree.build((f"k{i}", bytes(16)) for i in range(100))
    assert small.sparse and small.nbytes < 100 * 1000
    full = MerkleTree.build((f"k{i}", bytes(16)) for i in range(50_000))
    assert not full.sparse and full.nbytes == 69_905 * 20
    grown = MerkleTree()
    for i in range(50_000):
        grown.update(f"k{i}", None, bytes(16))
    assert not grown.sparse and grown == full
    assert MerkleTree.build([("a", bytes(16))], fanout=16, depth=5).nbytes < 1000


def dense(tree: MerkleTree) -> MerkleTree:
    twin = tree.copy()
    if twin.sparse:
        twin._densify()
    return twin


@settings(max_examples=100, deadline=None)
@given(
    entries=st.dictionaries(st.text(max_size=8), present_digests, max_size=80),
    removed=st.integers(0, 20),
    max_keys=st.integers(0, 30),
)
def test_the_sparse_form_answers_every_question_as_the_full_arrays_do(
    entries: dict[str, bytes], removed: int, max_keys: int
) -> None:
    tree = MerkleTree.build(entries.items(), **SMALL)
    for key in list(entries)[:removed]:
        tree.update(key, entries[key], None)
    full = dense(tree)
    assert tree.sparse and not full.sparse and tree == full
    assert (tree.root(), tree.count()) == (full.root(), full.count())
    for level in range(SMALL["depth"] + 1):
        for index in range(SMALL["fanout"] ** level):
            assert tree.node(level, index) == full.node(level, index)
            if level < SMALL["depth"]:
                assert tree.children(level, index) == full.children(level, index)
    leaves = SMALL["fanout"] ** SMALL["depth"]
    for first in range(0, leaves, 7):
        for last in (first, min(leaves - 1, first + 9), leaves - 1):
            assert tree.keys_in_leaves(first, last) == full.keys_in_leaves(first, last)
            assert tree.split_leaves(first, last, max_keys) == full.split_leaves(
                first, last, max_keys
            )


@settings(max_examples=200, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from("abcdefgh") | keys, maybe_digests, st.booleans()), max_size=60
    )
)
def test_a_full_tree_read_between_its_writes_answers_as_a_fresh_build(
    writes: list[tuple[str, bytes | None, bool]],
) -> None:
    """A full tree holds its writes per leaf and folds them in when read: reads at any
    point in a run of writes see every write before them, on every level."""
    tree = dense(MerkleTree(**SMALL))
    held: dict[str, bytes] = {}
    for key, digest, read in writes:
        tree.update(key, held.get(key), digest)
        if digest is None:
            held.pop(key, None)
        else:
            held[key] = digest
        if read:
            fresh = dense(MerkleTree.build(held.items(), **SMALL))
            for level in range(SMALL["depth"] + 1):
                for index in range(SMALL["fanout"] ** level):
                    assert tree.node(level, index) == fresh.node(level, index)
    assert not tree.sparse
    assert tree == MerkleTree.build(held.items(), **SMALL)
    assert tree.count() == len(held)


def test_a_full_tree_refuses_to_remove_from_a_leaf_its_held_writes_emptied() -> None:
    tree = dense(MerkleTree(**SMALL))
    tree.update("a", None, bytes(16))
    tree.update("a", bytes(16), None)
    with pytest.raises(ValueError):
        tree.update("a", bytes(16), None)
    assert tree == MerkleTree(**SMALL)


def test_update_with_an_old_digest_the_tree_never_saw_is_refused() -> None:
    tree = MerkleTree()
    with pytest.raises(ValueError):
        tree.update("ghost", bytes(16), None)
    assert tree == MerkleTree()


@pytest.mark.parametrize(
    ("fanout", "depth"), [(3, 4), (1, 4), (512, 1), (16, 0), (16, 7), (256, 4)]
)
def test_shapes_that_are_not_powers_of_two_or_too_large_are_refused(
    fanout: int, depth: int
) -> None:
    with pytest.raises(ValueError):
        MerkleTree(fanout, depth)


def test_digests_of_the_wrong_size_and_missing_nodes_are_refused() -> None:
    tree = MerkleTree(**SMALL)
    with pytest.raises(ValueError):
        tree.update("k", None, b"short")
    with pytest.raises(ValueError):
        tree.node(1, 4)
    with pytest.raises(ValueError):
        tree.children(3, 0)
