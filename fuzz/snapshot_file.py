#!/usr/bin/env python3
"""Snapshot files: records of a `persist` snapshot, possibly damaged or hostile, read for `restore`.

The input is a list of LMDB records (`db (1) | key length (1) | value length
(2, big-endian) | key | value`, db 0 = entries, 1 = members), written into a
well-formed LMDB environment that `SnapshotReader` then reads in full, as
`restore` does. Must hold: it yields entries or raises `NotFound` or
`Unavailable`, nothing else.

What this leaves to LMDB is the file's page structure: LMDB trusts it, and a
damaged page can make it read past the mapped file and die of SIGBUS (found
by fuzzing whole files byte by byte, see tests/storage/test_snapshot_damaged.py).
`SnapshotReader` reads every snapshot once in a child process first, so that
crash becomes Unavailable; this target checks what swarmnode itself decodes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lmdb
from harness import main

from swarmnode.errors import NotFound, Unavailable
from swarmnode.storage import layout as L
from swarmnode.storage.snapshot import SnapshotReader

_ROOT = Path(
    tempfile.mkdtemp(prefix="fuzz-snap-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
)
DBS = (b"entries", b"members")


def records(data: bytes) -> list[tuple[int, bytes, bytes]]:
    out = []
    at = 0
    while at + 4 <= len(data) and len(out) < 64:
        db, klen, vlen = data[at] % 2, data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        at += 4
        key, value = data[at : at + klen], data[at + klen : at + klen + vlen]
        at += klen + vlen
        if key:
            out.append((db, key, value))
    return out


def encode(recs: list[tuple[int, bytes, bytes]]) -> bytes:
    """The input that writes these records (for seeds)."""
    return b"".join(bytes([db, len(k)]) + len(v).to_bytes(2, "big") + k + v for db, k, v in recs)


def check(data: bytes) -> None:
    path = _ROOT / "s"
    shutil.rmtree(path, ignore_errors=True)
    env = lmdb.open(str(path), map_size=1 << 24, max_dbs=len(L.DB_NAMES) + 1, subdir=True)
    try:
        handles = [env.open_db(name) for name in DBS]
        with env.begin(write=True) as txn:
            for db, key, value in records(data):
                txn.put(key, value, db=handles[db])
    finally:
        env.close()
    try:
        with SnapshotReader(path, verify=False) as reader:
            for _ns, _key, _entry in reader.entries_of():
                pass
    except (NotFound, Unavailable):
        pass


if __name__ == "__main__":
    main(check)
