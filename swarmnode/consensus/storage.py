"""What Raft needs durably, and two stores for it: in memory (tests) and LMDB.

Raft reads storage once, when it is built (`load`), and afterwards only tells
it what to write, through the Ready contract (`persist(rd)`, one atomic write
per Ready). So a store is small: it keeps the hard state, the latest snapshot
(metadata and the machine's opaque bytes), the compaction point, and the log
entries after it.

LMDB layout (`LmdbStorage(path)`, its own environment, fsync on):

    meta      b"format"  -> b"1"
              b"hard"    -> msgpack [term, vote or None, commit]
              b"offset"  -> msgpack [index, term]    the compaction point
              b"snap"    -> msgpack [index, term, [voters], [learners]]
    snapshot  b"data"    -> the snapshot's bytes (one LMDB value; overflow pages)
    log       be64(index) -> msgpack [term, kind, data]

`persist` writes a whole Ready in one write transaction: a crash leaves either
all of it or none of it, which is what lets messages of that Ready leave only
after it returns.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import lmdb
import msgpack

from swarmnode.consensus.ready import RaftReady
from swarmnode.consensus.records import (
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
    SnapshotMeta,
    encode_conf_change,
)

FORMAT = b"1"
_BE64 = struct.Struct(">Q")


class RaftStorageError(Exception):
    """The store cannot be used: full, or holding data of another format."""


@dataclass
class StoredState:
    """Everything Raft rebuilds itself from after a restart."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot = field(default_factory=Snapshot)
    offset: int = 0
    offset_term: int = 0
    entries: list[Entry] = field(default_factory=list)

    def is_empty(self) -> bool:
        return self.hard_state == HardState() and not self.entries and self.offset == 0


class RaftStorage(Protocol):
    def load(self) -> StoredState: ...

    def persist(self, rd: RaftReady) -> None:
        """Make the Ready's hard state, snapshot, compaction and entries durable, atomically."""
        ...


def bootstrap(storage: RaftStorage, voters: list[str]) -> None:
    """Make `storage` the first state of a new group whose voters are `voters`: one CONF
    entry (init) at index 1, term 1, already committed. Every first voter writes exactly
    this, so their logs agree; nodes that join later start empty and receive it from the
    leader like any entry."""
    if not voters:
        raise ValueError("a group needs at least one voter")
    if not storage.load().is_empty():
        raise RaftStorageError("storage already holds Raft state; refusing to bootstrap")
    init = ConfChange("init", None, tuple(sorted(set(voters))))
    entry = Entry(1, 1, EntryKind.CONF, encode_conf_change(init))
    storage.persist(RaftReady(hard_state=HardState(1, None, 1), entries=[entry]))


class MemoryStorage:
    """Keeps what was persisted in memory: it outlives the `Raft` built on it, so tests
    crash a node by dropping its `Raft` and building a new one from the same storage."""

    def __init__(self) -> None:
        self._state = StoredState()

    def load(self) -> StoredState:
        s = self._state
        return StoredState(s.hard_state, s.snapshot, s.offset, s.offset_term, list(s.entries))

    def copy(self) -> MemoryStorage:
        """Another storage holding what this one holds now (to branch a scenario)."""
        other = MemoryStorage()
        other._state = self.load()
        return other

    def persist(self, rd: RaftReady) -> None:
        s = self._state
        if rd.snapshot is not None:
            s.snapshot = rd.snapshot
            s.offset, s.offset_term = rd.snapshot.meta.index, rd.snapshot.meta.term
            s.entries = []
        if rd.compaction is not None:
            c = rd.compaction
            s.snapshot = c.snapshot
            if c.offset > s.offset:
                del s.entries[: c.offset - s.offset]
                s.offset, s.offset_term = c.offset, c.offset_term
        if rd.entries:
            first = rd.entries[0].index
            del s.entries[first - s.offset - 1 :]
            s.entries.extend(rd.entries)
        if rd.hard_state is not None:
            s.hard_state = rd.hard_state


class LmdbStorage:
    """Raft's durable state in an LMDB environment of its own at `path` (a directory)."""

    def __init__(self, path: str | Path, *, map_size: int = 4 << 30, sync: bool = True) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.env = lmdb.open(
            str(path), map_size=map_size, max_dbs=3, subdir=True, sync=sync, metasync=sync
        )
        self._meta = self.env.open_db(b"meta")
        self._log = self.env.open_db(b"log")
        self._snap = self.env.open_db(b"snapshot")
        with self.env.begin(write=True) as txn:
            found = txn.get(b"format", db=self._meta)
            if found is None:
                txn.put(b"format", FORMAT, db=self._meta)
            elif found != FORMAT:
                raise RaftStorageError(f"{path}: raft storage format {found!r}, not {FORMAT!r}")

    def close(self) -> None:
        self.env.close()

    def load(self) -> StoredState:
        with self.env.begin() as txn:
            state = StoredState()
            raw = txn.get(b"hard", db=self._meta)
            if raw is not None:
                term, vote, commit = msgpack.unpackb(raw)
                state.hard_state = HardState(term, vote, commit)
            raw = txn.get(b"offset", db=self._meta)
            if raw is not None:
                state.offset, state.offset_term = msgpack.unpackb(raw)
            raw = txn.get(b"snap", db=self._meta)
            if raw is not None:
                index, term, voters, learners = msgpack.unpackb(raw)
                conf = ConfState(frozenset(voters), frozenset(learners))
                data = bytes(txn.get(b"data", b"", db=self._snap))
                state.snapshot = Snapshot(SnapshotMeta(index, term, conf), data)
            for key, value in txn.cursor(db=self._log):
                term, kind, data = msgpack.unpackb(value)
                state.entries.append(Entry(_BE64.unpack(key)[0], term, EntryKind(kind), data))
        return state

    def persist(self, rd: RaftReady) -> None:
        if not rd.must_persist():
            return
        try:
            with self.env.begin(write=True) as txn:
                if rd.snapshot is not None:
                    self._put_snapshot(txn, rd.snapshot)
                    txn.drop(self._log, delete=False)
                    meta = rd.snapshot.meta
                    txn.put(b"offset", msgpack.packb([meta.index, meta.term]), db=self._meta)
                if rd.compaction is not None:
                    c = rd.compaction
                    self._put_snapshot(txn, c.snapshot)
                    raw = txn.get(b"offset", db=self._meta)
                    if c.offset > (msgpack.unpackb(raw)[0] if raw is not None else 0):
                        self._delete_through(txn, c.offset)
                        offset = msgpack.packb([c.offset, c.offset_term])
                        txn.put(b"offset", offset, db=self._meta)
                if rd.entries:
                    self._delete_from(txn, rd.entries[0].index)
                    cursor = txn.cursor(db=self._log)
                    cursor.putmulti(
                        (_BE64.pack(e.index), msgpack.packb([e.term, int(e.kind), e.data]))
                        for e in rd.entries
                    )
                if rd.hard_state is not None:
                    hs = rd.hard_state
                    txn.put(b"hard", msgpack.packb([hs.term, hs.vote, hs.commit]), db=self._meta)
        except lmdb.MapFullError:
            raise RaftStorageError(f"{self.path}: raft storage is full; raise map_size") from None

    def _put_snapshot(self, txn: lmdb.Transaction, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        wire = [meta.index, meta.term, sorted(meta.conf.voters), sorted(meta.conf.learners)]
        txn.put(b"snap", msgpack.packb(wire), db=self._meta)
        txn.put(b"data", snapshot.data, db=self._snap)

    def _delete_from(self, txn: lmdb.Transaction, index: int) -> None:
        cursor = txn.cursor(db=self._log)
        start = _BE64.pack(index)
        while cursor.set_range(start):
            cursor.delete()

    def _delete_through(self, txn: lmdb.Transaction, index: int) -> None:
        cursor = txn.cursor(db=self._log)
        while cursor.first() and _BE64.unpack(cursor.key())[0] <= index:
            cursor.delete()
