"""Raft's storage: the LMDB store and the in-memory one keep exactly the same thing for
any sequence of Readies, the LMDB store still has it after the process is gone, and a
Ready is written whole or not at all."""

from __future__ import annotations

import tempfile
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.consensus.ready import Compaction, RaftReady
from swarmnode.consensus.records import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
    SnapshotMeta,
)
from swarmnode.consensus.storage import (
    LmdbStorage,
    MemoryStorage,
    RaftStorageError,
    StoredState,
    bootstrap,
)


def as_tuple(state: StoredState) -> tuple:
    return (
        state.hard_state,
        state.snapshot,
        state.offset,
        state.offset_term,
        [(e.index, e.term, e.kind, e.data) for e in state.entries],
    )


@st.composite
def ready_sequences(draw):
    """Readies as Raft can produce them: appends that may replace a suffix, compactions up
    to what is stored, snapshots from a leader that replace everything."""
    offset, last, term = 0, 0, 1
    terms = {0: 0}
    readies = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["append", "append", "hard", "compact", "install"]))
        rd = RaftReady()
        if kind == "append":
            start = draw(st.integers(offset + 1, last + 1))
            term += draw(st.integers(0, 1))
            count = draw(st.integers(1, 5))
            rd.entries = [
                Entry(start + i, term, EntryKind.NORMAL, draw(st.binary(max_size=20)))
                for i in range(count)
            ]
            last = start + count - 1
            terms.update({e.index: term for e in rd.entries})
        elif kind == "hard":
            term += draw(st.integers(0, 2))
            rd.hard_state = HardState(term, draw(st.sampled_from([None, "a", "b"])), last)
        elif kind == "compact" and last > offset:
            index = draw(st.integers(offset + 1, last))
            keep = draw(st.integers(0, index - offset))
            meta = SnapshotMeta(index, terms[index], ConfState(frozenset({"a"}), frozenset({"b"})))
            snapshot = Snapshot(meta, draw(st.binary(max_size=50)))
            rd.compaction = Compaction(snapshot, index - keep, terms[index - keep])
            offset = max(offset, index - keep)
        elif kind == "install":
            index = last + draw(st.integers(1, 10))
            meta = SnapshotMeta(index, term, ConfState(frozenset({"a", "c"})))
            rd.snapshot = Snapshot(meta, draw(st.binary(max_size=50)))
            offset = last = index
            terms[index] = term
        readies.append(rd)
    return readies


@settings(max_examples=60)
@given(ready_sequences())
def test_lmdb_and_memory_storage_keep_the_same_state_for_any_readies(readies):
    with tempfile.TemporaryDirectory() as tmp:
        disk = LmdbStorage(Path(tmp) / "raft", map_size=64 << 20, sync=False)
        memory = MemoryStorage()
        for rd in readies:
            disk.persist(rd)
            memory.persist(rd)
            assert as_tuple(disk.load()) == as_tuple(memory.load())
        disk.close()
        reopened = LmdbStorage(Path(tmp) / "raft", map_size=64 << 20, sync=False)
        assert as_tuple(reopened.load()) == as_tuple(memory.load())
        reopened.close()


def test_bootstrap_writes_one_committed_configuration_entry_and_only_once(tmp_path):
    storage = LmdbStorage(tmp_path / "raft")
    bootstrap(storage, ["c", "a", "b"])
    state = storage.load()
    assert state.hard_state == HardState(1, None, 1)
    (entry,) = state.entries
    assert (entry.index, entry.term, entry.kind) == (1, 1, EntryKind.CONF)
    with pytest.raises(RaftStorageError):
        bootstrap(storage, ["a"])
    with pytest.raises(ValueError):
        bootstrap(MemoryStorage(), [])
    storage.close()


def test_a_ready_is_written_whole_or_not_at_all(tmp_path):
    """A Ready that does not fit leaves the store as it was: its hard state (written last)
    is not there without its entries, nor its entries without the hard state."""
    storage = LmdbStorage(tmp_path / "raft", map_size=256 << 10)
    bootstrap(storage, ["a"])
    before = as_tuple(storage.load())
    big = [Entry(2 + i, 1, EntryKind.NORMAL, b"x" * 4000) for i in range(200)]
    with pytest.raises(RaftStorageError, match="full"):
        storage.persist(RaftReady(hard_state=HardState(5, "a", 1), entries=big))
    assert as_tuple(storage.load()) == before
    storage.close()


def test_storage_of_another_format_is_refused(tmp_path):
    path = tmp_path / "raft"
    LmdbStorage(path).close()
    env = lmdb.open(str(path), max_dbs=3)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"99", db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(RaftStorageError, match="format"):
        LmdbStorage(path)


def test_lmdb_storage_syncs_by_default(tmp_path):
    storage = LmdbStorage(tmp_path / "raft")
    assert storage.env.flags()["sync"] is True
    storage.close()
