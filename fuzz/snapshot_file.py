#!/usr/bin/env python3
"""Snapshot files: a `persist` snapshot's data.mdb, possibly damaged or hostile, read for `restore`.

The input replaces data.mdb of a snapshot directory, which `SnapshotReader`
opens and reads in full. Must hold: it yields entries or raises `NotFound`
or `Unavailable` (what `restore` reports to the client), nothing else; and it
never crashes the process (LMDB is C: a crash here would take the node down
on `restore`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

from swarmnode.errors import NotFound, Unavailable
from swarmnode.storage.snapshot import SnapshotReader

_DIR = Path(
    tempfile.mkdtemp(prefix="fuzz-snap-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
)


def check(data: bytes) -> None:
    (_DIR / "data.mdb").write_bytes(data)
    try:
        with SnapshotReader(_DIR) as reader:
            for _ns, _key, _entry in reader.entries_of():
                pass
    except (NotFound, Unavailable):
        pass


if __name__ == "__main__":
    main(check)
