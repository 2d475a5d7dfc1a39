"""A Merkle tree over one namespace's (key, digest) pairs, updated in place on every write.

Anti-entropy has to find the few keys that differ between two replicas of a
namespace that may hold millions of keys, with traffic that grows with the log
of the key count. Three choices make that cheap:

- A key's leaf is fixed by a hash of the key alone, never by which other keys
  exist, so every replica has the same tree shape and node (level, index) on one
  side is compared with node (level, index) on the other, with no rebalancing.
- An entry contributes `entry_hash(key, digest)` and a node's hash is the XOR of
  the contributions below it. XOR is its own inverse, so a write removes the old
  contribution and adds the new one on one root-to-leaf path: O(depth), no
  rebuild. (XOR of 128-bit hashes can be forced to collide only by someone who
  chooses both many keys and their digests; digests hash states stamped by the
  writing node, inside an authenticated cluster, which we accept.)
- Every node also keeps its key count. The protocol uses counts to switch from
  descending to listing keys, and (hash, count) still tells a subtree from an
  empty one if contributions happened to cancel.

Memory. A full tree stores no keys, only F^0 + ... + F^D nodes of 16 hash
bytes and a 4-byte count: the default (fanout 16, depth 4: 65,536 leaves, about
15 keys per leaf at 1,000,000 keys) is 69,905 nodes, 1.4 MB per namespace
(`MerkleTree.nbytes`). Most namespaces are small (an agent's private memory,
a task list), and a node may hold hundreds of them, so a tree starts *sparse*:
only its non-empty leaves, in a dict, with every interior node computed when
asked from the leaves beneath it (anti-entropy asks for few nodes, and a
small tree has few leaves to add up). Once it holds more than
`SPARSE_MAX_LEAVES` non-empty leaves it turns into the full arrays for good;
either form answers every question identically (`tests/replication`).

Writes to a full tree are held per leaf (a dict of leaf -> XOR and count changes)
and folded into the arrays, leaves and then only the interior nodes above them,
when the tree is next read or `PENDING_MAX_LEAVES` leaves have changes held: a write
is a dict update instead of a scalar numpy operation on every level, and a burst of
writes pays one vectorised fold.

Storage ordering. The storage layer keeps an index ordered by
(namespace, leaf index as LEAF_INDEX_BYTES big-endian bytes, key as UTF-8) -> digest;
`index_key(key)` is the part after the namespace prefix (the prefix must be of
fixed length or self-delimiting, so it never reorders entries of one namespace).
Node (level, index) covers leaves [index * F^(D-level), (index + 1) * F^(D-level) - 1]
(`leaf_range`), so a subtree's entries are one contiguous run of that index, in
the order `position(key)` gives.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b
from typing import TYPE_CHECKING

from swarmnode.lazyimport import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

DEFAULT_FANOUT = 16
DEFAULT_DEPTH = 4
HASH_BYTES = 16
"""Size of a node hash and of one entry's contribution."""
DIGEST_BYTES = 16
"""Size of a state digest, as the storage layer computes it."""
LEAF_INDEX_BYTES = 4
"""Width of the big-endian leaf index in the storage index key."""
MAX_LEAF_BITS = 24
"""2^24 leaves (16.7 M) already need 0.35 GB per tree; deeper trees are a mistake."""
EMPTY_HASH = bytes(HASH_BYTES)

_LEAF_PERSON = b"swarmnode-leaf"
_ENTRY_PERSON = b"swarmnode-entry"
SPARSE_MAX_LEAVES = 2048
PENDING_MAX_LEAVES = 1024
"""A full tree folds its held writes in once they touch this many leaves, even unread: the
memory they hold and the pause of one fold stay small (a fold costs a few µs a leaf)."""
"""Non-empty leaves a tree keeps as a dict before it allocates its full arrays (about
0.3 MB of dict against 1.4 MB of arrays at the default shape)."""
_HASH_DTYPE = "<u8"
"""Hashes are two little-endian uint64 words, so the bytes are the same on every machine."""
_WORD = (1 << 64) - 1


def leaf_bits(fanout: int, depth: int) -> int:
    """Number of key-hash bits that select a leaf in a tree of this shape."""
    if fanout < 2 or fanout > 256 or fanout & (fanout - 1):
        raise ValueError(f"fanout must be a power of two in [2, 256], not {fanout}")
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    bits = depth * (fanout.bit_length() - 1)
    if bits > MAX_LEAF_BITS:
        raise ValueError(f"fanout {fanout} and depth {depth} give 2^{bits} leaves (max 2^24)")
    return bits


DEFAULT_LEAF_BITS = leaf_bits(DEFAULT_FANOUT, DEFAULT_DEPTH)


def leaf_of(key: str, bits: int = DEFAULT_LEAF_BITS) -> int:
    """The leaf holding `key`: the leading `bits` bits of a hash of the key."""
    h = blake2b(key.encode("utf-8"), digest_size=8, person=_LEAF_PERSON).digest()
    return int.from_bytes(h, "big") >> (64 - bits)


def position(key: str, bits: int = DEFAULT_LEAF_BITS) -> tuple[int, bytes]:
    """Where `key` sorts in the storage index of its namespace: (leaf, UTF-8 key)."""
    raw = key.encode("utf-8")
    h = blake2b(raw, digest_size=8, person=_LEAF_PERSON).digest()
    return int.from_bytes(h, "big") >> (64 - bits), raw


def index_key(key: str, bits: int = DEFAULT_LEAF_BITS) -> bytes:
    """The storage index key of `key` after its namespace prefix; byte order = `position` order."""
    leaf, raw = position(key, bits)
    return leaf.to_bytes(LEAF_INDEX_BYTES, "big") + raw


def leaf_range(level: int, index: int, fanout: int, depth: int) -> tuple[int, int]:
    """First and last leaf (inclusive) under node (level, index)."""
    shift = (depth - level) * (fanout.bit_length() - 1)
    return index << shift, ((index + 1) << shift) - 1


def entry_hash(key: str, digest: bytes) -> bytes:
    """One entry's contribution. The digest has a fixed size, so key || digest is unambiguous."""
    if len(digest) != DIGEST_BYTES:
        raise ValueError(f"a digest has {DIGEST_BYTES} bytes, not {len(digest)}")
    return blake2b(
        key.encode("utf-8") + digest, digest_size=HASH_BYTES, person=_ENTRY_PERSON
    ).digest()


class MerkleTree:
    """Hashes and key counts of every node of one namespace's tree, level by level.

    Level 0 is the root, level `depth` the leaves; level L has fanout^L nodes.
    Sparse (a dict of non-empty leaves) until it outgrows `SPARSE_MAX_LEAVES`,
    then full arrays; see the module docstring.
    """

    __slots__ = (
        "_counts",
        "_hashes",
        "_leaves",
        "_pending",
        "_shift",
        "depth",
        "fanout",
        "leaf_bits",
    )

    def __init__(self, fanout: int = DEFAULT_FANOUT, depth: int = DEFAULT_DEPTH) -> None:
        self.leaf_bits = leaf_bits(fanout, depth)
        self.fanout = fanout
        self.depth = depth
        self._shift = fanout.bit_length() - 1
        self._leaves: dict[int, list[int]] | None = {}
        """Sparse form: leaf -> [hash as a 128-bit int, count]; None once full."""
        self._hashes: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._pending: dict[int, list[int]] = {}
        """Full form: leaf -> [XOR of contributions, count change] not yet in the arrays."""

    @classmethod
    def build(
        cls,
        entries: Iterable[tuple[str, bytes]],
        fanout: int = DEFAULT_FANOUT,
        depth: int = DEFAULT_DEPTH,
    ) -> MerkleTree:
        """The tree of `entries` (distinct keys), for start-up: one pass, then level sums."""
        tree = cls(fanout, depth)
        leaves: list[int] = []
        contributions: list[bytes] = []
        for key, digest in entries:
            leaves.append(leaf_of(key, tree.leaf_bits))
            contributions.append(entry_hash(key, digest))
        if not leaves:
            return tree
        if len(set(leaves)) <= SPARSE_MAX_LEAVES:
            sparse = tree._leaves
            assert sparse is not None
            for leaf, c in zip(leaves, contributions, strict=True):
                node = sparse.setdefault(leaf, [0, 0])
                node[0] ^= int.from_bytes(c, "little")
                node[1] += 1
            return tree
        tree._allocate()
        leaf_index = np.asarray(leaves, dtype=np.int64)
        words = np.frombuffer(b"".join(contributions), dtype=_HASH_DTYPE).reshape(-1, 2)
        np.bitwise_xor.at(tree._hashes[depth], leaf_index, words)
        tree._counts[depth][:] = np.bincount(leaf_index, minlength=fanout**depth)
        tree._sum_levels()
        return tree

    def _allocate(self) -> None:
        fanout, depth = self.fanout, self.depth
        self._hashes = [np.zeros((fanout**lv, 2), dtype=_HASH_DTYPE) for lv in range(depth + 1)]
        self._counts = [np.zeros(fanout**lv, dtype=np.uint32) for lv in range(depth + 1)]
        self._leaves = None

    def _sum_levels(self) -> None:
        fanout = self.fanout
        for lv in range(self.depth - 1, -1, -1):
            below = self._hashes[lv + 1].reshape(-1, fanout, 2)
            self._hashes[lv][:] = np.bitwise_xor.reduce(below, axis=1)
            self._counts[lv][:] = self._counts[lv + 1].reshape(-1, fanout).sum(axis=1)

    def _densify(self) -> None:
        """Turn the dict of leaves into the full arrays (once it has grown past the bound)."""
        sparse = self._leaves
        assert sparse is not None
        self._allocate()
        bottom, counts = self._hashes[self.depth], self._counts[self.depth]
        for leaf, (h, n) in sparse.items():
            bottom[leaf, 0] = h & _WORD
            bottom[leaf, 1] = h >> 64
            counts[leaf] = n
        self._sum_levels()

    @property
    def sparse(self) -> bool:
        """Whether the tree is still a dict of its non-empty leaves."""
        return self._leaves is not None

    def leaf_of(self, key: str) -> int:
        return leaf_of(key, self.leaf_bits)

    def position(self, key: str) -> tuple[int, bytes]:
        return position(key, self.leaf_bits)

    def index_key(self, key: str) -> bytes:
        return index_key(key, self.leaf_bits)

    def leaf_range(self, level: int, index: int) -> tuple[int, int]:
        self._check_node(level, index)
        return leaf_range(level, index, self.fanout, self.depth)

    def update(
        self, key: str, old: bytes | None, new: bytes | None, leaf: int | None = None
    ) -> None:
        """Record that `key`'s digest went from `old` to `new` (None: absent).

        The caller must pass the digest the tree last saw for `key`; a wrong `old`
        corrupts the tree silently (only removing from an empty leaf is caught).
        `leaf`: `key`'s leaf if the caller already hashed it (`leaf_of(key)`).
        """
        if old == new:
            return
        delta = 0
        for digest in (old, new):
            if digest is not None:
                delta ^= int.from_bytes(entry_hash(key, digest), "little")
        index = self.leaf_of(key) if leaf is None else leaf
        sparse = self._leaves
        if sparse is not None:
            node = sparse.get(index)
            if old is not None and node is None:
                raise ValueError(f"{key!r} is not in its leaf: `old` is not what the tree saw")
            if node is None:
                node = sparse[index] = [0, 0]
            node[0] ^= delta
            node[1] += 1 if old is None else -1 if new is None else 0
            if node[1] == 0 and node[0] == 0:
                del sparse[index]
            elif len(sparse) > SPARSE_MAX_LEAVES:
                self._densify()
            return
        node = self._pending.get(index)
        if old is not None:
            held = int(self._counts[self.depth][index]) + (node[1] if node is not None else 0)
            if held == 0:
                raise ValueError(f"{key!r} is not in its leaf: `old` is not what the tree saw")
        if node is None:
            node = self._pending[index] = [0, 0]
        node[0] ^= delta
        node[1] += 1 if old is None else -1 if new is None else 0
        if len(self._pending) >= PENDING_MAX_LEAVES:
            self._settle()

    def _settle(self) -> None:
        """Fold the held writes into the arrays: their leaves, then the nodes above them."""
        pending = self._pending
        if not pending:
            return
        self._pending = {}
        n = len(pending)
        leaves = np.fromiter(pending, dtype=np.int64, count=n)
        words = np.array([(h & _WORD, h >> 64) for h, _ in pending.values()], dtype=_HASH_DTYPE)
        changes = np.fromiter((c for _, c in pending.values()), dtype=np.int64, count=n)
        depth, fanout = self.depth, self.fanout
        self._hashes[depth][leaves] ^= words.reshape(n, 2)
        self._counts[depth][leaves] = self._counts[depth][leaves].astype(np.int64) + changes
        index = leaves
        for lv in range(depth - 1, -1, -1):
            index = np.unique(index >> self._shift)
            below = self._hashes[lv + 1].reshape(-1, fanout, 2)[index]
            self._hashes[lv][index] = np.bitwise_xor.reduce(below, axis=1)
            self._counts[lv][index] = self._counts[lv + 1].reshape(-1, fanout)[index].sum(axis=1)

    def root(self) -> bytes:
        return self.node(0, 0)[0]

    def count(self) -> int:
        return self.node(0, 0)[1]

    def node(self, level: int, index: int) -> tuple[bytes, int]:
        """Hash and key count of node (level, index)."""
        self._check_node(level, index)
        if self._leaves is not None:
            h, n = self._sum(level, index)
            return h.to_bytes(HASH_BYTES, "little"), n
        self._settle()
        return self._hashes[level][index].tobytes(), int(self._counts[level][index])

    def _sum(self, level: int, index: int) -> tuple[int, int]:
        """Sparse form: the hash and count of a node, from the leaves beneath it."""
        assert self._leaves is not None
        shift = (self.depth - level) * self._shift
        h = n = 0
        for leaf, (lh, ln) in self._leaves.items():
            if leaf >> shift == index:
                h ^= lh
                n += ln
        return h, n

    def children(self, level: int, index: int) -> tuple[bytes, list[int]]:
        """The fanout child hashes of an interior node, concatenated, and their key counts."""
        self._check_node(level, index)
        if level == self.depth:
            raise ValueError("a leaf has no children")
        first = index * self.fanout
        if self._leaves is not None:
            shift = (self.depth - level - 1) * self._shift
            hashes = [0] * self.fanout
            counts = [0] * self.fanout
            for leaf, (lh, ln) in self._leaves.items():
                child = (leaf >> shift) - first
                if 0 <= child < self.fanout:
                    hashes[child] ^= lh
                    counts[child] += ln
            return b"".join(h.to_bytes(HASH_BYTES, "little") for h in hashes), counts
        self._settle()
        span = slice(first, first + self.fanout)
        return self._hashes[level + 1][span].tobytes(), self._counts[level + 1][span].tolist()

    def keys_in_leaves(self, first_leaf: int, last_leaf: int) -> int:
        if self._leaves is not None:
            return sum(
                n for leaf, (_, n) in self._leaves.items() if first_leaf <= leaf <= last_leaf
            )
        self._settle()
        return int(self._counts[self.depth][first_leaf : last_leaf + 1].sum())

    def split_leaves(self, first_leaf: int, last_leaf: int, max_keys: int) -> int:
        """The last leaf L in [first_leaf, last_leaf] such that leaves first_leaf..L hold at
        most `max_keys` keys, but at least first_leaf: how far one bounded read may go."""
        if self._leaves is not None:
            total = 0
            for leaf in sorted(x for x in self._leaves if first_leaf <= x <= last_leaf):
                total += self._leaves[leaf][1]
                if total > max_keys:
                    return max(leaf - 1, first_leaf)
            return last_leaf
        self._settle()
        counts = np.cumsum(self._counts[self.depth][first_leaf : last_leaf + 1], dtype=np.int64)
        fitting = int(np.searchsorted(counts, max_keys, side="right"))
        return first_leaf + max(fitting, 1) - 1

    def copy(self) -> MerkleTree:
        twin = MerkleTree(self.fanout, self.depth)
        if self._leaves is not None:
            twin._leaves = {leaf: list(node) for leaf, node in self._leaves.items()}
        else:
            self._settle()
            twin._leaves = None
            twin._hashes = [h.copy() for h in self._hashes]
            twin._counts = [c.copy() for c in self._counts]
        return twin

    @property
    def nbytes(self) -> int:
        """Memory held by the node arrays (sparse: an estimate of the dict's)."""
        if self._leaves is not None:
            return 200 * len(self._leaves)
        return sum(h.nbytes for h in self._hashes) + sum(c.nbytes for c in self._counts)

    def _leaf_map(self) -> dict[int, tuple[int, int]]:
        """Every non-empty leaf as (hash, count), whichever the form."""
        if self._leaves is not None:
            return {leaf: (h, n) for leaf, (h, n) in self._leaves.items()}
        self._settle()
        bottom, counts = self._hashes[self.depth], self._counts[self.depth]
        out = {}
        for leaf in np.flatnonzero(counts | (bottom[:, 0] != 0) | (bottom[:, 1] != 0)):
            lo, hi = bottom[leaf]
            out[int(leaf)] = (int(lo) | int(hi) << 64, int(counts[leaf]))
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleTree):
            return NotImplemented
        return (self.fanout, self.depth) == (
            other.fanout,
            other.depth,
        ) and self._leaf_map() == other._leaf_map()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MerkleTree(fanout={self.fanout}, depth={self.depth}, count={self.count()})"

    def _check_node(self, level: int, index: int) -> None:
        if not 0 <= level <= self.depth or not 0 <= index < self.fanout**level:
            raise ValueError(f"no node ({level}, {index}) in a depth-{self.depth} tree")
