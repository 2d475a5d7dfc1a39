"""Reading the store: any thread, each on its own LMDB read transaction.

Readers never see the engine's private state: definitions and counts come
from the `Catalog` the engine published at its last commit, entries from
LMDB, which gives every read transaction a consistent snapshot. A `get` of a
hot key skips decoding: decoded entries are kept in a cache tagged with their
record's digest, so a changed entry is simply a miss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import lmdb

from swarmnode.archive.records import archived_reader
from swarmnode.crdt.codec import decode_entry, encode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.storage import layout as L
from swarmnode.storage.catalog import Catalog
from swarmnode.storage.entries import ALL, load, load_first_member
from swarmnode.tagged_cache import TaggedCache


class Reader:
    def __init__(
        self,
        env: lmdb.Environment,
        dbs: dict[str, Any],
        catalog: Callable[[], Catalog],
        cache_bytes: int,
    ) -> None:
        self.env = env
        self.db = dbs
        self._catalog = catalog
        self.cache = TaggedCache(cache_bytes)
        self.archived: Callable[[lmdb.Transaction, str, str], Entry | None] = archived_reader(
            env, dbs
        )
        """States of entries archived here (`archive/`), for peers that lack them."""

    def read(self) -> lmdb.Transaction:
        return self.env.begin(buffers=False)

    def get(self, ns: str, key: str, txn: lmdb.Transaction | None = None) -> Entry | None:
        """The full stored entry (every set member loaded), live or not."""
        if txn is None:
            with self.read() as t:
                return self.get(ns, key, t)
        loaded = load(txn, self.db, L.entry_key(ns, key), ALL)
        return loaded.entry if loaded else None

    def get_header(self, ns: str, key: str, txn: lmdb.Transaction) -> Entry | None:
        """The entry with at most one set member loaded: enough to tell kind and liveness.

        Shared with other readers through the read cache: do not mutate it.
        """
        ekey = L.entry_key(ns, key)
        rec = txn.get(ekey, db=self.db["entries"])
        if rec is None:
            return None
        tag = rec[: L.DIGEST_SIZE]
        entry = self.cache.get(ekey, tag)
        if entry is not None:
            return entry
        loaded = load(txn, self.db, ekey, (), rec)
        assert loaded is not None  # given a record, load always decodes it
        if loaded.entry.orset is None:  # a set header is completed member by member
            self.cache.put(ekey, loaded.entry, tag, nbytes=len(rec))
        return loaded.entry

    def scan(
        self, ns: str, txn: lmdb.Transaction, *, prefix: str = "", after: str | None = None
    ) -> Iterator[tuple[str, Entry]]:
        """Entries of a namespace in key order (headers, at most one set member each)."""
        bound = L.scan_prefix(ns, prefix)
        start = L.entry_key(ns, after) + b"\x00" if after is not None else bound
        with txn.cursor(db=self.db["entries"]) as cur:
            if not cur.set_range(start):
                return
            for k, v in cur:
                if not k.startswith(bound):
                    return
                rec = L.unpack_record(v)
                key = L.names_of(k, rec)[1]
                if not key.startswith(prefix):
                    continue
                entry = decode_entry(rec.header)
                if entry.orset is not None:
                    load_first_member(txn, self.db, k, entry)
                yield key, entry

    def states(self, ns: str, keys: list[str]) -> list[tuple[str, bytes]]:
        """Full encoded states, for anti-entropy. Missing keys are left out."""
        out = []
        with self.read() as txn:
            for key in keys:
                entry = self.get(ns, key, txn)
                if entry is None:
                    entry = self.archived(txn, ns, key)
                if entry is not None:
                    out.append((key, encode_entry(entry)))
        return out

    def leaf_entries(self, ns: str, first_leaf: int, last_leaf: int) -> list[tuple[str, bytes]]:
        out = []
        start = L.merkle_leaf_prefix(ns, first_leaf)
        bound = L.ns_prefix(ns)
        with self.read() as txn, txn.cursor(db=self.db["merkle"]) as cur:
            if cur.set_range(start):
                plen = len(bound)
                for k, v in cur:
                    if not k.startswith(bound):
                        break
                    leaf, key, digest = L.unpack_merkle(k, v, plen)
                    if leaf > last_leaf:
                        break
                    out.append((key, digest))
        return out

    def digests(self, ns: str) -> Iterator[tuple[str, bytes]]:
        """Every (key, digest) of a namespace, for building its Merkle tree at start-up."""
        bound = L.ns_prefix(ns)
        with self.read() as txn, txn.cursor(db=self.db["merkle"]) as cur:
            if cur.set_range(bound):
                for k, v in cur:
                    if not k.startswith(bound):
                        break
                    _, key, digest = L.unpack_merkle(k, v, len(bound))
                    yield key, digest

    def changes_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        out = []
        with self.read() as txn, txn.cursor(db=self.db["changes"]) as cur:
            if cur.set_range(L.seq_key(seq + 1)):
                for k, v in cur:
                    ns, key = L.split_full_key(v)
                    out.append((L.seq_from_key(k), ns, key))
                    if len(out) >= limit:
                        break
        return out
