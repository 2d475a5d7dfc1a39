"""Reading a snapshot made by `persist`: a compacted LMDB copy of the store.

A snapshot is opened read-only and without locking, so it can be inspected
while the node runs, and restoring one never touches the live environment
except through ordinary writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import msgpack

from swarmnode.crdt.codec import decode_dots, decode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.errors import NotFound, Unavailable
from swarmnode.storage import layout as L
from swarmnode.storage.namespaces import reserved


class SnapshotReader:
    def __init__(self, path: Path) -> None:
        if not (path / "data.mdb").exists():
            raise NotFound(f"no snapshot at {path}")
        try:
            self.env = lmdb.open(
                str(path), readonly=True, lock=False, max_dbs=len(L.DB_NAMES) + 1, subdir=True
            )
        except lmdb.Error as exc:
            raise Unavailable(f"cannot open snapshot {path}: {exc}") from exc
        self.entries = self.env.open_db(b"entries", create=False)
        self.members = self.env.open_db(b"members", create=False)

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entries_of(self, ns: str | None = None) -> Iterator[tuple[str, str, Entry]]:
        """Every (namespace, key, full entry) of the snapshot, reserved namespaces left out
        (definitions, and agent registrations, whose revocations a restore must not undo)."""
        with self.env.begin() as txn, txn.cursor(db=self.entries) as cur:
            start = L.ns_prefix(ns) if ns else b""
            ok = cur.set_range(start) if start else cur.first()
            while ok:
                ekey = bytes(cur.key())
                if ns and not ekey.startswith(start):
                    break
                rec = L.unpack_record(bytes(cur.value()))
                entry_ns, key = L.names_of(ekey, rec)
                if not reserved(entry_ns):
                    entry = decode_entry(rec.header)
                    if entry.orset is not None:
                        self._load_members(txn, ekey, entry)
                    yield entry_ns, key, entry
                ok = cur.next()

    def _load_members(self, txn: lmdb.Transaction, ekey: bytes, entry: Entry) -> None:
        prefix = L.member_prefix(ekey)
        with txn.cursor(db=self.members) as cur:
            ok = cur.set_range(prefix)
            while ok and cur.key().startswith(prefix):
                member, raw = L.unpack_member(bytes(cur.key()), bytes(cur.value()))
                entry.orset.elems[member] = decode_dots(msgpack.unpackb(raw))
                ok = cur.next()
