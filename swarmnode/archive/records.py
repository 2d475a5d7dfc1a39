"""Archived entries in the store: what the engine does with them inside its transactions.

Two kinds of archived entry, one row each in the `archived` database (keyed
like the entry):

- stale: the entry itself moved out of the live store. Its record, set
  members and due time are deleted, but its row in the Merkle index stays, with
  the digest it had. To anti-entropy the node still holds the entry: its trees
  and its peers' agree, so nothing is re-sent and nothing is deleted anywhere
  else. When the entry is needed again (a client writes it, a peer's newer
  state or delta arrives, `archive_restore`), the engine puts the archived state
  back first, exactly as it was (same digest), and carries on as with any live
  entry. A peer asking for the state (it lacks the entry) is served from the
  archive (`archived_state`).
- expired: a copy of an entry's last live state, kept when it expired in a
  namespace with `archive_expired`. The live store expires and collects the
  entry as always (every replica does the same); the copy is this node's own.
  Restoring it is a fresh write of its value.

The engine writes copies of expiring entries into `archive_inbox` in the same
transaction as the expiry, so none is lost to a crash; the archiver compresses
them into segments later (`FileExpired`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lmdb
import msgpack

from swarmnode.archive.segments import Pointer, Segments
from swarmnode.crdt.codec import decode_entry, encode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.storage import layout as L
from swarmnode.storage.entries import ALL, load
from swarmnode.storage.ops import Change, OpResult

if TYPE_CHECKING:
    from swarmnode.storage.engine import Engine, _Effects

STALE, EXPIRED = "stale", "expired"
_BE64 = struct.Struct(">Q")


@dataclass(frozen=True)
class Archived:
    """One archived entry: where it is, what it cost, and what it was."""

    kind: str
    pointer: Pointer
    digest: bytes | None
    """stale: the digest its Merkle row keeps; expired: None."""
    archived_ms: int
    raw_bytes: int
    stored_bytes: int
    """Its share of its compressed frame."""
    key: str
    ts: int
    agent: str | None
    visible_ms: int | None
    """expired: the last moment it was visible (how to show it); stale: None."""

    def pack(self) -> bytes:
        p = self.pointer
        return msgpack.packb(
            [
                self.kind,
                [p.segment, p.offset, p.length, p.index],
                self.digest,
                self.archived_ms,
                self.raw_bytes,
                self.stored_bytes,
                self.key,
                self.ts,
                self.agent,
                self.visible_ms,
            ],
            use_bin_type=True,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> Archived:
        kind, p, digest, at, raw_bytes, stored, key, ts, agent, visible = msgpack.unpackb(
            raw, raw=False
        )
        return cls(kind, Pointer(*p), digest, at, raw_bytes, stored, key, ts, agent, visible)

    def public(self, ns: str) -> dict[str, Any]:
        return {
            "ns": ns,
            "key": self.key,
            "reason": self.kind,
            "archived_ms": self.archived_ms,
            "bytes": self.raw_bytes,
            "agent": self.agent,
        }


# --- operations the engine applies ------------------------------------------------------


@dataclass
class StaleItem:
    key: str
    digest: bytes
    """The entry's digest when the archiver read it: moved only if unchanged since."""
    pointer: Pointer
    raw_bytes: int
    stored_bytes: int


@dataclass
class ArchiveStale:
    """Move these entries of `ns` out of the live store (their states are in the segments)."""

    ns: str
    items: list[StaleItem]


@dataclass
class FileExpired:
    """Copies from the inbox, now compressed at these pointers: (inbox key, pointer, raw,
    stored)."""

    items: list[tuple[bytes, Pointer, int, int]]


@dataclass
class NoteReads:
    """Entries read here and when (ns, key, ms); `forget`: rows of (ns, key) to drop."""

    reads: list[tuple[str, str, int]]
    forget: list[tuple[str, str]]


@dataclass
class Unarchive:
    """Put these stale entries back into the live store."""

    ns: str
    keys: list[str]


@dataclass
class ForgetArchived:
    """Drop the archive rows of these keys (restored expired copies)."""

    ns: str
    keys: list[str]


ARCHIVE_OPS = (ArchiveStale, FileExpired, NoteReads, Unarchive, ForgetArchived)


def dispatch(engine: Engine, txn: lmdb.Transaction, op: Any, now_ms: int, fx: _Effects) -> OpResult:
    if isinstance(op, ArchiveStale):
        return _archive_stale(engine, txn, op, now_ms, fx)
    if isinstance(op, FileExpired):
        return _file_expired(engine, txn, op, now_ms)
    if isinstance(op, NoteReads):
        return _note_reads(engine, txn, op)
    if isinstance(op, Unarchive):
        changes = []
        missing = []
        for key in op.keys:
            change = materialize(engine, txn, op.ns, key, L.entry_key(op.ns, key), now_ms, fx)
            (changes.append(change) if change is not None else missing.append(key))
        return OpResult({"restored": len(changes), "missing": missing}, changes=changes)
    assert isinstance(op, ForgetArchived)
    for key in op.keys:
        txn.delete(L.entry_key(op.ns, key), db=engine.db["archived"])
    return OpResult({"forgotten": len(op.keys)})


def archive_dir(env: lmdb.Environment) -> Path:
    """`<data dir>/archive`: beside the store's LMDB environment (`<data dir>/store`)."""
    return Path(env.path()).parent / "archive"


def segments_of(engine: Engine) -> Segments:
    """The segments the engine and the archiver share (made on first use)."""
    found = getattr(engine, "_segments", None)
    if found is None:
        found = Segments(archive_dir(engine.env))
        engine._segments = found  # type: ignore[attr-defined]
    return found


def archived_reader(
    env: lmdb.Environment, dbs: dict[str, Any]
) -> Callable[[lmdb.Transaction, str, str], Entry | None]:
    """The state of an entry archived here as stale (None otherwise), read in `txn`."""
    segments = Segments(archive_dir(env))

    def read(txn: lmdb.Transaction, ns: str, key: str) -> Entry | None:
        found = row(txn, dbs, ns, key)
        if found is None or found.kind != STALE:
            return None
        return state_of(segments, found)

    return read


def row(txn: lmdb.Transaction, dbs: dict[str, Any], ns: str, key: str) -> Archived | None:
    raw = txn.get(L.entry_key(ns, key), db=dbs["archived"])
    return Archived.unpack(raw) if raw is not None else None


def state_of(segments: Segments, archived: Archived) -> Entry:
    return decode_entry(segments.read(archived.pointer))


def _archive_stale(
    engine: Engine, txn: lmdb.Transaction, op: ArchiveStale, now_ms: int, fx: _Effects
) -> OpResult:
    changes: list[Change] = []
    skipped = 0
    for item in op.items:
        ekey = L.entry_key(op.ns, item.key)
        loaded = load(txn, engine.db, ekey, ALL)
        if loaded is None or loaded.digest != item.digest:
            skipped += 1  # written (or gone) since the archiver read it: stays as it is
            continue
        entry = loaded.entry
        change = engine._drop(txn, op.ns, item.key, ekey, loaded, "archive", fx)
        # The Merkle row stays: to anti-entropy the node still holds the entry.
        txn.put(
            L.merkle_key(op.ns, L_leaf(engine, item.key), item.key),
            L.merkle_value(item.key, loaded.digest),
            db=engine.db["merkle"],
        )
        change.new_digest = loaded.digest
        archived = Archived(
            STALE,
            item.pointer,
            loaded.digest,
            now_ms,
            item.raw_bytes,
            item.stored_bytes,
            item.key,
            entry.ts,
            entry.agent,
            None,
        )
        txn.put(ekey, archived.pack(), db=engine.db["archived"])
        txn.delete(ekey, db=engine.db["reads"])
        changes.append(change)
    return OpResult({"archived": len(changes), "skipped": skipped}, changes=changes)


def L_leaf(engine: Engine, key: str) -> int:
    from swarmnode.replication.merkle import leaf_of

    return leaf_of(key, engine.leaf_bits)


def materialize(
    engine: Engine,
    txn: lmdb.Transaction,
    ns: str,
    key: str,
    ekey: bytes,
    now_ms: int,
    fx: _Effects,
) -> Change | None:
    """Put a stale archived entry back into the live store as it was; None if there is none."""
    raw = txn.get(ekey, db=engine.db["archived"])
    if raw is None:
        return None
    archived = Archived.unpack(raw)
    if archived.kind != STALE:
        return None
    entry = state_of(segments_of(engine), archived)
    txn.delete(ekey, db=engine.db["archived"])
    change = engine._write(txn, ns, key, ekey, None, entry, ALL, "restore", "local", now_ms, fx)
    # Its Merkle row never left: the tree must not count the entry twice.
    change.old_digest = archived.digest
    return change


def keep_expired(
    engine: Engine, txn: lmdb.Transaction, ns: str, key: str, entry: Entry, now_ms: int
) -> None:
    """A copy of an entry that has just expired, for the archiver to compress."""
    visible = [t for t in _expiries(entry) if t is not None]
    visible_ms = (max(visible) - 1) if visible else now_ms - 1
    ekey = L.entry_key(ns, key)
    txn.put(
        _BE64.pack(now_ms) + ekey,
        msgpack.packb([ns, key, encode_entry(entry), visible_ms], use_bin_type=True),
        db=engine.db["archive_inbox"],
    )


def _expiries(entry: Entry) -> list[int | None]:
    times: list[int | None] = []
    if entry.reg is not None and not entry.reg.deleted:
        times.append(entry.reg.expires_at)
    if entry.mv is not None:
        times.extend(v.expires_at for v in entry.mv.versions.values())
    if entry.counter is not None:
        times.append(entry.counter.expires_at)
    if entry.orset is not None:
        times.append(entry.orset.expires_at)
    return times


def inbox(env: lmdb.Environment, dbs: dict[str, Any], limit: int) -> list[tuple[bytes, list[Any]]]:
    """Up to `limit` copies waiting in the inbox: (inbox key, [ns, key, state, visible_ms])."""
    out = []
    with env.begin() as txn, txn.cursor(db=dbs["archive_inbox"]) as cur:
        for k, v in cur:
            out.append((bytes(k), msgpack.unpackb(v, raw=False)))
            if len(out) >= limit:
                break
    return out


def _file_expired(engine: Engine, txn: lmdb.Transaction, op: FileExpired, now_ms: int) -> OpResult:
    filed = 0
    for inbox_key, pointer, raw_bytes, stored in op.items:
        raw = txn.get(inbox_key, db=engine.db["archive_inbox"])
        if raw is None:
            continue
        ns, key, state, visible_ms = msgpack.unpackb(raw, raw=False)
        entry = decode_entry(state)
        ekey = L.entry_key(ns, key)
        txn.delete(inbox_key, db=engine.db["archive_inbox"])
        current = txn.get(ekey, db=engine.db["archived"])
        if current is not None and Archived.unpack(current).kind == STALE:
            continue  # the live entry itself is archived now: it is the newer state
        archived = Archived(
            EXPIRED,
            pointer,
            None,
            now_ms,
            raw_bytes,
            stored,
            key,
            entry.ts,
            entry.agent,
            visible_ms,
        )
        txn.put(ekey, archived.pack(), db=engine.db["archived"])
        filed += 1
    return OpResult({"filed": filed})


def _note_reads(engine: Engine, txn: lmdb.Transaction, op: NoteReads) -> OpResult:
    db = engine.db["reads"]
    for ns, key, ms in op.reads:
        txn.put(L.entry_key(ns, key), _BE64.pack(ms), db=db)
    for ns, key in op.forget:
        txn.delete(L.entry_key(ns, key), db=db)
    return OpResult({"noted": len(op.reads), "forgotten": len(op.forget)})


def last_read(txn: lmdb.Transaction, dbs: dict[str, Any], ekey: bytes) -> int:
    raw = txn.get(ekey, db=dbs["reads"])
    return _BE64.unpack(raw)[0] if raw is not None else 0


def purge(engine: Engine, txn: lmdb.Transaction, ns: str, cleared_at: int) -> list[Change]:
    """A namespace delete clears its archived entries too (stale ones leave the trees)."""
    changes = []
    prefix = L.ns_prefix(ns)
    rows = []
    with txn.cursor(db=engine.db["archived"]) as cur:
        if cur.set_range(prefix):
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                rows.append((bytes(k), Archived.unpack(bytes(v))))
    for ekey, archived in rows:
        if archived.ts > cleared_at:
            continue
        txn.delete(ekey, db=engine.db["archived"])
        if archived.kind == STALE:
            txn.delete(
                L.merkle_key(ns, L_leaf(engine, archived.key), archived.key),
                db=engine.db["merkle"],
            )
            changes.append(
                Change(ns, archived.key, "purge", "sweep", archived.digest, None, False, False)
            )
    return changes
