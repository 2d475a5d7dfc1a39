"""Reading search hits back against the store: what a reply shows, and which hits are stale.

The index can lag the store, so every hit is checked against the store as a
read transaction sees it. A hit is stale when its entry changed since it was
indexed: if the entry is still live, has a vector and passes the filter, it
stays in the reply with its distance recomputed from its current vector;
otherwise it is dropped. Either way the search runs again without it.

When the index holds every change the transaction sees (the indexer's
position, read under the space's lock while searching, reaches the
snapshot's change-feed seq), a hit's record is the one its label was indexed
from or a newer one: its decode is then taken from the cache by that
record's digest without reading the store, and only its liveness at this
moment is checked. Anything else (a cache miss, an entry other than a plain
register, an index behind the store) is read from LMDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmnode.crdt.entry import Entry
from swarmnode.lazyimport import lazy_module
from swarmnode.storage.lmdb_store import Store
from swarmnode.tagged_cache import TaggedCache
from swarmnode.vectors.filters import Filter, posting_keys
from swarmnode.vectors.indexer import indexed_version, vector_digest
from swarmnode.vectors.records import read_record, snapshot_seq
from swarmnode.vectors.shards import score
from swarmnode.vectors.space import Hit, Space

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

Verdict = tuple[Any, bool, bool, bool | None]
"""What reading one hit back found: (the version a reply shows, or None when the entry is
gone; whether its vector moved since it was indexed; whether it passes the filter; its
`conflict` flag, None outside mv/consensus siblings)."""
Found = Any
"""A Verdict, or just the version when it is the indexed one, live and unchanged: the
common case, which needs none of a verdict's checks (nor a tuple per hit kept, and
tracked by the garbage collector, for the rest of a batch)."""
GONE: Verdict = (None, False, False, None)
"""The verdict on a hit whose entry is gone, expired or holds no vector."""
Good = list[tuple[float, dict[str, Any]]]
"""Reply items with their distances."""


class ReadBack:
    """Hits read back in one read transaction: one query's, or a whole batch's (each distinct
    label once)."""

    def __init__(
        self,
        store: Store,
        cache: TaggedCache,
        space: Space,
        txn: Any,
        applied: int,
        now: int,
        rounds: list[list[Hit]],
    ) -> None:
        """`applied`: the change-feed seq the index reflected while it searched `rounds`, the
        hits of each query that are to be read back."""
        self.store = store
        self.cache = cache
        self.space = space
        self.txn = txn
        self.seq = snapshot_seq(store, txn)
        self.now = now
        self.seen: dict[int, Found] = {}
        """What was found for each label so far."""
        if applied >= self.seq:
            self._settle_from_cache(rounds)

    def _settle_from_cache(self, rounds: list[list[Hit]]) -> None:
        """The index holds every change the read sees: the verdicts its cached records give,
        looked up all at once."""
        ns = self.space.ns
        cleared_at = self.store.namespace(ns).cleared_at
        now = self.now
        known = {hit.label: hit for hits in rounds for hit in hits if hit.stored is not None}
        found = self.cache.get_many(
            [("e", ns, hit.key) for hit in known.values()], [hit.stored for hit in known.values()]
        )
        seen = self.seen
        for label, entry in zip(known, found, strict=True):
            settled = live_register(entry, cleared_at, now)
            if settled is not None:
                seen[label] = settled

    def items(
        self, hits: list[Hit], flt: Filter | None, query: np.ndarray
    ) -> tuple[Good, list[Hit]]:
        """Reply items (with their distances) and the stale hits, for one query's hits."""
        space = self.space
        metric, seen = space.metric, self.seen
        good: Good = []
        stale: list[Hit] = []
        for hit in hits:
            verdict = seen.get(hit.label)
            if verdict is None:
                verdict = seen[hit.label] = self.verdict(hit, flt)
            if verdict.__class__ is not tuple:  # the indexed version, live and unchanged
                item = {
                    "key": hit.key,
                    "score": score(metric, hit.distance),
                    "value": verdict.value,
                    "meta": verdict.meta,
                }
                good.append((hit.distance, item))
                continue
            version, moved, passes, conflict = verdict
            if version is None:
                stale.append(hit)
                continue
            if moved or not passes:
                stale.append(hit)
            if not passes or (moved and len(version.vector) != 4 * space.dim):
                continue
            distance = hit.distance
            if moved:
                distance = space.distance(np.frombuffer(version.vector, "<f4"), query)
            item = {
                "key": hit.key,
                "score": score(metric, distance),
                "value": version.value,
                "meta": version.meta,
            }
            if conflict is not None:
                item["conflict"] = conflict
            good.append((distance, item))
        return good, stale

    def verdict(self, hit: Hit, flt: Filter | None) -> Verdict:
        """What the store says of one hit's entry, read from LMDB."""
        space, now = self.space, self.now
        ns = space.ns
        found = read_record(self.store, self.txn, ns, hit.key, self.cache)
        entry, stored = found if found is not None else (None, None)
        version = indexed_version(self.store, ns, entry, now)
        if version is None:
            return GONE
        # The LWW record the hit was indexed from, unchanged, needs no more
        # checks (an MV entry can show another sibling as time passes).
        same = stored is not None and stored == hit.stored and entry.mv is None
        moved = not same and vector_digest(version.vector) != hit.digest
        if not same and not moved and stored is not None and entry.mv is None:
            space.note_stored(hit, stored, self.seq, posting_keys(version.meta))
        passes = same or flt is None or flt.matches(posting_keys(version.meta))
        conflict = None
        if version is not entry.reg and entry.mv is not None:
            # Only the newest sibling's vector is indexed: say when
            # there are others, so the caller knows to `get` them all.
            conflict = len(entry.mv.siblings(now)) > 1
        return version, moved, passes, conflict


def live_register(entry: Entry | None, cleared_at: int, now: int) -> Found | None:
    """What a hit of an index that holds every change the read sees finds, from `entry`,
    the cached decode of the very record the hit was indexed from: None (read the store)
    unless it holds a plain register alone, the common case, whose liveness now is all
    there is to check (what `indexed_version` checks, for that shape of entry); its vector
    and filter postings are the indexed ones, so it is the register itself or GONE."""
    if entry is None or entry.mv is not None or entry.counter is not None:
        return None
    reg = entry.reg
    if reg is None or entry.orset is not None:
        return None
    if entry.ts > cleared_at and reg.visible(now) and reg.vector is not None:
        return reg
    return GONE
