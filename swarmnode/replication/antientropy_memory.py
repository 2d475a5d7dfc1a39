"""An `EntrySource` held in dicts: the contract of the storage layer's source, in memory.

It exists so that anti-entropy can be run and measured without LMDB: by the
protocol tests, by `benchmarks/antientropy_bytes.py`, and by a simulator that
wants whole replicas in memory. It keeps its Merkle trees up to date on every
write exactly as the storage layer must, and lists entries in the storage
index order (`merkle.position`), so it doubles as the reference for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from hashlib import blake2b

from swarmnode.replication.merkle import (
    DEFAULT_DEPTH,
    DEFAULT_FANOUT,
    DIGEST_BYTES,
    MerkleTree,
)

Join = Callable[[bytes, bytes], bytes]
"""Merges a received state into the local one (the CRDT join on encoded states)."""


def state_digest(state: bytes) -> bytes:
    return blake2b(state, digest_size=DIGEST_BYTES).digest()


class MemoryEntrySource:
    """Namespaces of key -> encoded state, each with its Merkle tree and a per-leaf index."""

    def __init__(self, join: Join, fanout: int = DEFAULT_FANOUT, depth: int = DEFAULT_DEPTH):
        self._join = join
        self._fanout = fanout
        self._depth = depth
        self._states: dict[str, dict[str, bytes]] = {}
        self._leaves: dict[str, dict[int, dict[str, bytes]]] = {}
        self._trees: dict[str, MerkleTree] = {}

    @classmethod
    def build(
        cls,
        join: Join,
        data: dict[str, Iterable[tuple[str, bytes]]],
        fanout: int = DEFAULT_FANOUT,
        depth: int = DEFAULT_DEPTH,
    ) -> MemoryEntrySource:
        """A source holding `data` (namespace -> (key, state) pairs), its trees built in bulk."""
        source = cls(join, fanout, depth)
        for ns, pairs in data.items():
            states = source._states.setdefault(ns, {})
            leaves = source._leaves.setdefault(ns, {})
            digests = []
            for key, state in pairs:
                digest = state_digest(state)
                states[key] = state
                digests.append((key, digest))
            tree = MerkleTree.build(digests, fanout, depth)
            for key, digest in digests:
                leaves.setdefault(tree.leaf_of(key), {})[key] = digest
            source._trees[ns] = tree
        return source

    def clone(self) -> MemoryEntrySource:
        """An independent replica with the same contents (states are shared, being immutable)."""
        twin = MemoryEntrySource(self._join, self._fanout, self._depth)
        twin._states = {ns: dict(states) for ns, states in self._states.items()}
        twin._leaves = {
            ns: {leaf: dict(entries) for leaf, entries in leaves.items()}
            for ns, leaves in self._leaves.items()
        }
        twin._trees = {ns: tree.copy() for ns, tree in self._trees.items()}
        return twin

    def put(self, ns: str, key: str, state: bytes) -> None:
        """Replace the state of `key` (a local write, or a tombstone as a state of its own)."""
        tree = self._trees.get(ns)
        if tree is None:
            tree = self._trees[ns] = MerkleTree(self._fanout, self._depth)
            self._states[ns] = {}
            self._leaves[ns] = {}
        old = self._states[ns].get(key)
        new_digest = state_digest(state)
        tree.update(key, None if old is None else state_digest(old), new_digest)
        self._states[ns][key] = state
        self._leaves[ns].setdefault(tree.leaf_of(key), {})[key] = new_digest

    def remove(self, ns: str, key: str) -> None:
        """Drop `key` entirely, as the storage does when a tombstone or an entry expires."""
        old = self._states.get(ns, {}).pop(key, None)
        if old is None:
            return
        tree = self._trees[ns]
        tree.update(key, state_digest(old), None)
        leaf = tree.leaf_of(key)
        del self._leaves[ns][leaf][key]

    def apply(self, ns: str, states: Iterable[tuple[str, bytes]]) -> int:
        """Join received states into the store; returns how many entries changed."""
        changed = 0
        for key, state in states:
            old = self.get(ns, key)
            merged = state if old is None else self._join(old, state)
            if merged != old:
                self.put(ns, key, merged)
                changed += 1
        return changed

    def get(self, ns: str, key: str) -> bytes | None:
        return self._states.get(ns, {}).get(key)

    def items(self, ns: str) -> dict[str, bytes]:
        return dict(self._states.get(ns, {}))

    def namespaces(self) -> list[str]:
        return sorted(self._trees)

    def tree(self, ns: str) -> MerkleTree | None:
        return self._trees.get(ns)

    def entries_in_leaves(
        self, ns: str, first_leaf: int, last_leaf: int
    ) -> list[tuple[str, bytes]]:
        leaves = self._leaves.get(ns, {})
        if last_leaf - first_leaf < len(leaves):
            chosen: Iterable[int] = range(first_leaf, last_leaf + 1)
        else:
            chosen = sorted(leaf for leaf in leaves if first_leaf <= leaf <= last_leaf)
        out: list[tuple[str, bytes]] = []
        for leaf in chosen:
            entries = leaves.get(leaf)
            if entries:
                out.extend(sorted(entries.items()))
        return out

    def states(self, ns: str, keys: list[str]) -> list[tuple[str, bytes]]:
        held = self._states.get(ns, {})
        return [(key, held[key]) for key in keys if key in held]
