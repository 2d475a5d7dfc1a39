"""One namespace's vectors: its shards, the label <-> key maps and the filter postings.

Every vector gets a label, unique within the namespace and never reused. A
key whose vector changes keeps its label if that label lives in the open
shard (hnswlib updates it in place) and otherwise gets a new label in the open
shard while the old one is marked deleted; full shards are therefore only
ever marked, and a full shard whose live share drops below `compact_below`
has its live vectors moved out and its file dropped.

Changes are made by the indexer thread alone, under the write side of
`lock`; searches hold the read side. Everything a checkpoint must write is
remembered in `changed` (label -> record, or None once removed).

In a sharded namespace the space holds the partitions this node holds, and a
search may be asked for some of them only (a scatter gives each partition to
one owner): labels are then kept per bucket of key hash (`BUCKET_BITS`, the
finest partitioning a namespace can have), and the labels of the other
partitions are left out of the search like stale ones.
"""

from __future__ import annotations

import itertools
import operator
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from swarmnode.lazyimport import lazy_module
from swarmnode.placement.hashing import MAX_PARTITIONS, partition_bits
from swarmnode.replication.merkle import leaf_of
from swarmnode.vectors.catalog import LabelRecord, SpaceRecord
from swarmnode.vectors.config import VectorConfig
from swarmnode.vectors.filters import Filter, Posting
from swarmnode.vectors.rwlock import Busy, ReadWriteLock
from swarmnode.vectors.shards import Shard, ShardFileError
from swarmnode.vectors.walkorder import walk_order

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

BUCKET_BITS = partition_bits(MAX_PARTITIONS)
"""Labels of a sharded namespace are kept per this many top bits of their key's hash."""


@dataclass(slots=True)
class Indexed:
    """What the index holds for one key."""

    key: str
    label: int
    shard: int
    digest: bytes
    expires_at: int | None
    postings: tuple[Posting, ...]
    # Digest of the store record this was indexed from (None after a restart):
    # while the record still has it, a search hit needs no further check.
    stored: bytes | None = None
    # The store's change-feed seq of the snapshot `stored` was read in: the key's record
    # there, and no change to the key between its last applied change and that seq.
    stored_seq: int = 0

    def record(self) -> LabelRecord:
        return LabelRecord(self.key, self.shard, self.digest, self.expires_at, self.postings)


@dataclass(slots=True)
class Wanted:
    """What the index should hold for a key, read from its entry in the store."""

    vector: np.ndarray
    digest: bytes
    expires_at: int | None
    postings: tuple[Posting, ...]
    stored: bytes | None = None
    stored_seq: int = 0


@dataclass(slots=True)
class Hit:
    label: int
    key: str
    digest: bytes
    distance: float
    stored: bytes | None = None


def _by_distance_then_key(hit: Hit) -> tuple[float, str]:
    return hit.distance, hit.key


class Space:
    def __init__(self, ns: str, dim: int, metric: str, cleared_at: int, cfg: VectorConfig) -> None:
        self.ns = ns
        self.dim = dim
        self.metric = metric
        # The namespace definition's `cleared_at` this space was built under:
        # a namespace deleted and defined again is rebuilt, not patched.
        self.cleared_at = cleared_at
        self.cfg = cfg
        self.lock = ReadWriteLock()
        self._noting = threading.Lock()
        """Searches noting record digests (`note_stored`) take turns."""
        self.by_key: dict[str, Indexed] = {}
        self.by_label: dict[int, Indexed] = {}
        self.postings: dict[Posting, set[int]] = {}
        self.shards: dict[int, Shard] = {}
        self.open_id: int | None = None
        self.next_label = 0
        self.version = 0
        self.changed: dict[int, Indexed | None] = {}
        # Rebuilt since the last checkpoint: its labels are rewritten whole.
        self.fresh = True
        self.building: tuple[int, int] | None = None
        self._memo: tuple[int, np.ndarray, np.ndarray] | None = None
        self.buckets: dict[int, set[int]] | None = None
        """Sharded namespaces: labels per key-hash bucket (None: not kept)."""
        self._outside: tuple[int, frozenset[int], int, frozenset[int]] | None = None
        """The last `labels_outside` answer: (version, parts, partitions, labels)."""

    # --- loading -------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        ns: str,
        record: SpaceRecord,
        labels: Iterable[tuple[int, LabelRecord]],
        directory: Path,
        cfg: VectorConfig,
    ) -> Space:
        """The space as its checkpoint left it; raises ShardFileError if a file is bad."""
        space = cls(ns, record.dim, record.metric, record.cleared_at, cfg)
        space.next_label = record.next_label
        for rec in record.shards:
            space.shards[rec.id] = Shard.load(directory, rec, record.metric, record.dim, cfg)
        for label, lrec in labels:
            shard = space.shards.get(lrec.shard)
            if shard is None:
                raise ShardFileError(f"label {label} of {ns!r} is in missing shard {lrec.shard}")
            item = Indexed(lrec.key, label, lrec.shard, lrec.digest, lrec.expires_at, lrec.postings)
            space._insert(item)
        for shard in space.shards.values():
            for label in shard.index.get_ids_list():
                item = space.by_label.get(label)
                if item is None or item.shard != shard.id:
                    shard.mark_deleted(label)
        if space.shards:
            last = space.shards[max(space.shards)]
            if last.count < cfg.shard_max:
                space.open_id = last.id
        space.fresh = False
        return space

    def manifest(self) -> SpaceRecord:
        return SpaceRecord(
            self.dim,
            self.metric,
            self.next_label,
            self.cleared_at,
            [s.record for s in sorted(self.shards.values(), key=lambda s: s.id) if s.record],
        )

    # --- bookkeeping ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self.by_label)

    def _insert(self, item: Indexed) -> None:
        self.by_key[item.key] = item
        self.by_label[item.label] = item
        self.shards[item.shard].members.add(item.label)
        for p in item.postings:
            self.postings.setdefault(p, set()).add(item.label)
        if self.buckets is not None:
            self.buckets.setdefault(leaf_of(item.key, BUCKET_BITS), set()).add(item.label)

    def track_partitions(self) -> None:
        """Keep labels per key-hash bucket from now on (the namespace is sharded)."""
        if self.buckets is not None:
            return
        buckets: dict[int, set[int]] = {}
        for label, item in self.by_label.items():
            buckets.setdefault(leaf_of(item.key, BUCKET_BITS), set()).add(label)
        self.buckets = buckets

    def labels_outside(self, parts: frozenset[int], partitions: int) -> frozenset[int]:
        """Labels of the partitions (of `partitions`) not in `parts`: what a search restricted
        to `parts` leaves out. Remembered until the index or `parts` change, since the
        same restriction comes with every search."""
        if self.buckets is None:
            raise ValueError(f"space {self.ns!r} does not keep labels per partition")
        memo = self._outside
        if memo is not None and memo[:3] == (self.version, parts, partitions):
            return memo[3]
        shift = BUCKET_BITS - partition_bits(partitions)
        out: set[int] = set()
        for bucket, labels in self.buckets.items():
            if (bucket >> shift) not in parts and labels:
                out |= labels
        frozen = frozenset(out)
        self._outside = (self.version, parts, partitions, frozen)
        return frozen

    def _unpost(self, item: Indexed) -> None:
        for p in item.postings:
            s = self.postings.get(p)
            if s is not None:
                s.discard(item.label)
                if not s:
                    del self.postings[p]

    def _forget(self, item: Indexed) -> None:
        self._unpost(item)
        if self.buckets is not None:
            bucket = self.buckets.get(leaf_of(item.key, BUCKET_BITS))
            if bucket is not None:
                bucket.discard(item.label)
        del self.by_label[item.label]
        if self.by_key.get(item.key) is item:
            del self.by_key[item.key]
        shard = self.shards[item.shard]
        shard.members.discard(item.label)
        shard.mark_deleted(item.label)
        self.changed[item.label] = None

    def _open_shard(self, room_for: int) -> Shard:
        shard = self.shards.get(self.open_id) if self.open_id is not None else None
        if shard is None or shard.count + room_for > self.cfg.shard_max:
            new_id = max(self.shards, default=-1) + 1
            shard = self.shards[new_id] = Shard.create(new_id, self.metric, self.dim, self.cfg)
            self.open_id = new_id
        return shard

    # --- changes (indexer thread, write lock held) ---------------------------

    def apply(self, items: list[tuple[str, Wanted | None]]) -> None:
        """Make the index hold exactly `items` (one entry per key) for their keys."""
        updates: list[tuple[Indexed, np.ndarray]] = []
        adds: list[tuple[str, Wanted]] = []
        for key, want in items:
            cur = self.by_key.get(key)
            if want is None:
                if cur is not None:
                    self._forget(cur)
                continue
            if cur is not None and cur.digest == want.digest:
                cur.stored, cur.stored_seq = want.stored, want.stored_seq
                if cur.postings != want.postings or cur.expires_at != want.expires_at:
                    self._unpost(cur)
                    cur.postings = want.postings
                    cur.expires_at = want.expires_at
                    for p in cur.postings:
                        self.postings.setdefault(p, set()).add(cur.label)
                    self.changed[cur.label] = cur
                continue
            if cur is not None and cur.shard == self.open_id:
                self._unpost(cur)
                cur.digest, cur.expires_at, cur.postings, cur.stored, cur.stored_seq = (
                    want.digest,
                    want.expires_at,
                    want.postings,
                    want.stored,
                    want.stored_seq,
                )
                for p in cur.postings:
                    self.postings.setdefault(p, set()).add(cur.label)
                self.changed[cur.label] = cur
                updates.append((cur, want.vector))
                continue
            if cur is not None:
                self._forget(cur)
            adds.append((key, want))
        if updates:
            shard = self.shards[self.open_id]  # type: ignore[index]
            shard.add(
                np.stack([v for _, v in updates]),
                np.array([i.label for i, _ in updates], dtype=np.uint64),
                0,
                self.cfg,
            )
        self._add(adds)
        if items:
            self.version += 1

    def _add(self, adds: list[tuple[str, Wanted]]) -> None:
        while adds:
            shard = self._open_shard(1)
            take = adds[: self.cfg.shard_max - shard.count]
            adds = adds[len(take) :]
            labels = np.arange(self.next_label, self.next_label + len(take), dtype=np.uint64)
            self.next_label += len(take)
            shard.add(np.stack([w.vector for _, w in take]), labels, len(take), self.cfg)
            for (key, want), label in zip(take, labels.tolist(), strict=True):
                item = Indexed(
                    key,
                    label,
                    shard.id,
                    want.digest,
                    want.expires_at,
                    want.postings,
                    want.stored,
                    want.stored_seq,
                )
                self._insert(item)
                self.changed[label] = item

    def compactable(self) -> Shard | None:
        """A full shard whose live share fell below `compact_below`, if any."""
        for shard in self.shards.values():
            if shard.id == self.open_id or shard.count < self.cfg.shard_max:
                continue
            if len(shard.members) < shard.count * self.cfg.compact_below:
                return shard
        return None

    def move_out(self, shard: Shard, limit: int) -> bool:
        """Move up to `limit` live vectors of `shard` to the open shard; True once it is gone."""
        items = [self.by_label[label] for label in itertools.islice(shard.members, limit)]
        if items:
            vectors = shard.index.get_items([i.label for i in items], return_type="numpy")
            moving = []
            for item, vector in zip(items, vectors, strict=True):
                self._forget(item)
                moving.append(
                    (
                        item.key,
                        Wanted(
                            vector,
                            item.digest,
                            item.expires_at,
                            item.postings,
                            item.stored,
                            item.stored_seq,
                        ),
                    )
                )
            self._add(moving)
            self.version += 1
        if not shard.members:
            del self.shards[shard.id]
            return True
        return False

    # --- search (read lock held) ---------------------------------------------

    def search(
        self, query: np.ndarray, k: int, flt: Filter | None, exclude: set[int]
    ) -> tuple[list[Hit], bool]:
        """The k nearest allowed labels, nearest first, and whether the search was exact."""
        hits, exact = self.search_many(query[None, :], k, flt, exclude)
        return hits[0], exact

    def search_many(
        self, queries: np.ndarray, k: int, flt: Filter | None, exclude: set[int]
    ) -> tuple[list[list[Hit]], bool]:
        """`search` for each row of `queries`, with one hnswlib call per shard for them all
        (the library loops over the rows in C), and whether the search was exact."""
        allowed: set[int] | None = flt.allowed(self.postings) if flt is not None else None
        n = len(allowed) if allowed is not None else len(self.by_label)
        if n <= self.cfg.exact_below:
            labels = allowed if allowed is not None else self.by_label.keys()
            memo = allowed is None
            return [self._exact(q, k, labels, exclude, memo=memo) for q in queries], True
        if len(queries) == 1:
            return self._walk(queries, k, allowed, exclude), False
        # Walked with near queries one after another (see `walkorder`), answered in the
        # callers' order.
        order = walk_order(queries)
        walked = self._walk(queries[order], k, allowed, exclude)
        return [walked[i] for i in np.argsort(order).tolist()], False

    def _walk(
        self, queries: np.ndarray, k: int, allowed: set[int] | None, exclude: set[int]
    ) -> list[list[Hit]]:
        """Each query's k nearest allowed labels in the shards' graphs, in the queries' order."""
        shards = [shard for shard in self.shards.values() if shard.members]
        if len(shards) == 1:  # its rows are in order already, and at most k long
            return self._shard_search(shards[0], queries, k, allowed, exclude)
        found: list[list[Hit]] = [[] for _ in range(len(queries))]
        for shard in shards:
            for hits, more in zip(
                found, self._shard_search(shard, queries, k, allowed, exclude), strict=True
            ):
                hits.extend(more)
        for hits in found:
            hits.sort(key=_by_distance_then_key)
            del hits[k:]
        return found

    def note_stored(self, hit: Hit, stored: bytes, seq: int, postings: tuple[Posting, ...]) -> None:
        """A search read `hit` back from the record `stored`, in a snapshot at change-feed `seq`,
        and found there the indexed vector with these filter postings.

        Remembering the record's digest lets later hits on it skip re-hashing the
        vector, which after a restart (when no digest is known) is most of the
        cost of reading a hit back, and lets a search of a caught-up index take
        the record from the cache without reading the store. Both need `stored`
        to stay the key's record at `stored_seq`, with the postings the index
        holds: so only an item still holding the vector and postings the hit
        came from takes it, only from a newer snapshot than the one its digest
        was read in, and never while the indexer changes the space (a busy
        space simply does not take the note).
        """
        try:
            with self.lock.read(blocking=False), self._noting:
                item = self.by_label.get(hit.label)
                if (
                    item is not None
                    and item.digest == hit.digest
                    and item.postings == postings
                    and seq > item.stored_seq
                ):
                    item.stored, item.stored_seq = stored, seq
        except Busy:
            pass

    def _shard_search(
        self,
        shard: Shard,
        queries: np.ndarray,
        k: int,
        allowed: set[int] | None,
        exclude: set[int],
    ) -> list[list[Hit]]:
        """Each query's hits in this shard, nearest first and equal distances by key."""
        if allowed is not None and exclude:
            keep = lambda label: label in allowed and label not in exclude  # noqa: E731
        elif allowed is not None:
            keep = allowed.__contains__
        elif exclude:
            keep = lambda label: label not in exclude  # noqa: E731
        else:
            keep = None
        want = min(k, len(shard.members))
        try:
            labels, dists = shard.index.knn_query(queries, k=want, num_threads=1, filter=keep)
        except RuntimeError:
            if len(queries) > 1:
                # One of them reaches fewer than `want` allowed labels: each on its own.
                return [
                    self._shard_search(shard, queries[i : i + 1], k, allowed, exclude)[0]
                    for i in range(len(queries))
                ]
            # Fewer than `want` reachable allowed labels: settle this shard exactly.
            members = [label for label in shard.members if keep is None or keep(label)]
            return [self._exact(queries[0], k, members, set(), memo=False)]
        by_label = self.by_label
        found = []
        for row_labels, row_dists in zip(labels.tolist(), dists.tolist(), strict=True):
            hits = []
            for label, dist in zip(row_labels, row_dists, strict=True):
                item = by_label.get(label)
                if item is not None:
                    hits.append(Hit(label, item.key, item.digest, dist, item.stored))
            # hnswlib gives each row nearest first: only equal distances need ordering (by key).
            if any(map(operator.eq, row_dists, row_dists[1:])):
                hits.sort(key=_by_distance_then_key)
            found.append(hits)
        return found

    def _exact(
        self, query: np.ndarray, k: int, labels: Iterable[int], exclude: set[int], memo: bool
    ) -> list[Hit]:
        ids, matrix = self._matrix(labels, memo)
        if not len(ids):
            return []
        dist = self._distances(matrix, query)
        if exclude:
            dist[np.isin(ids, np.fromiter(exclude, dtype=np.int64))] = np.inf
        take = min(k, len(ids))
        top = np.argpartition(dist, take - 1)[:take] if take < len(ids) else np.arange(len(ids))
        hits = []
        for j in top.tolist():
            if np.isinf(dist[j]):
                continue
            item = self.by_label[int(ids[j])]
            hits.append(Hit(item.label, item.key, item.digest, float(dist[j]), item.stored))
        hits.sort(key=_by_distance_then_key)
        return hits

    def distance(self, vector: np.ndarray, query: np.ndarray) -> float:
        """hnswlib's distance between one vector and the query, exactly."""
        return float(self._distances(vector[None, :], query)[0])

    def _distances(self, matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
        """hnswlib's distance, computed exactly in float64."""
        m = matrix.astype(np.float64, copy=False)
        q = query.astype(np.float64)
        if self.metric == "l2":
            return np.sum((m - q) ** 2, axis=1)
        if self.metric == "cosine":
            norms = np.linalg.norm(m, axis=1)
            norms[norms == 0] = 1.0
            qn = np.linalg.norm(q) or 1.0
            return 1.0 - (m @ q) / (norms * qn)
        return 1.0 - m @ q

    def _matrix(self, labels: Iterable[int], memo: bool) -> tuple[np.ndarray, np.ndarray]:
        if memo and self._memo is not None and self._memo[0] == self.version:
            return self._memo[1], self._memo[2]
        by_shard: dict[int, list[int]] = {}
        for label in labels:
            by_shard.setdefault(self.by_label[label].shard, []).append(label)
        ids_parts, parts = [], []
        for shard_id, members in by_shard.items():
            ids_parts.append(np.array(members, dtype=np.int64))
            parts.append(self.shards[shard_id].index.get_items(members, return_type="numpy"))
        if not parts:
            ids, matrix = np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        else:
            ids, matrix = np.concatenate(ids_parts), np.concatenate(parts).astype(np.float32)
        if memo:
            self._memo = (self.version, ids, matrix)
        return ids, matrix

    # --- checkpoint ----------------------------------------------------------

    def take_changes(self) -> Iterator[tuple[int, LabelRecord | None]]:
        changed, self.changed = self.changed, {}
        for label, item in changed.items():
            yield label, item.record() if item is not None else None

    def all_records(self) -> Iterator[tuple[int, LabelRecord]]:
        self.changed = {}
        for label, item in self.by_label.items():
            yield label, item.record()
