"""Entries read straight from the store's LMDB records, decoded once per version.

A record starts with the 16-byte digest of the whole entry, so a cached
decode is valid exactly while the digest matches: one LMDB lookup (a page the
OS normally holds in memory) and a 16-byte comparison replace decoding the
entry and re-validating its vector on every read of a hot entry. The indexer
fills the cache as it applies writes; searches fill it as they read hits back.
"""

from __future__ import annotations

import logging

import lmdb

from swarmnode.crdt.codec import decode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.errors import DecodeError
from swarmnode.storage import layout as L
from swarmnode.storage.lmdb_store import Store
from swarmnode.tagged_cache import TaggedCache

log = logging.getLogger("swarmnode.vectors")


def read_record(
    store: Store, txn: lmdb.Transaction, ns: str, key: str, cache: TaggedCache
) -> tuple[Entry, bytes] | None:
    """The entry's register state as stored now (set members are not loaded) and its digest."""
    raw = txn.get(L.entry_key(ns, key), db=store.db["entries"])
    if raw is None:
        return None
    tag = raw[: L.DIGEST_SIZE]
    entry = cache.get(("e", ns, key), tag)
    if entry is not None:
        return entry, tag
    try:
        entry = decode_entry(L.unpack_record(raw)[4])
    except DecodeError:
        log.error("event=vectors_bad_record ns=%s key=%r", ns, key)
        return None
    if entry.orset is None:
        cache.put(("e", ns, key), entry, tag, nbytes=len(raw))
    return entry, tag


def read_entry(
    store: Store, txn: lmdb.Transaction, ns: str, key: str, cache: TaggedCache
) -> Entry | None:
    found = read_record(store, txn, ns, key, cache)
    return found[0] if found is not None else None


def snapshot_seq(store: Store, txn: lmdb.Transaction) -> int:
    """The store's change-feed position as `txn` sees it: every change up to it is in the
    snapshot, none after."""
    raw = txn.get(b"seq", db=store.db["meta"])
    return int(raw) if raw else 0
