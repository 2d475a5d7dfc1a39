#!/usr/bin/env python3
"""Stored records: what the node reads back from its LMDB file (a disk can return garbage).

The input is split into an LMDB key and value and read back the way the
store does: entry records, set member records, Merkle index records, due
index keys and full entry keys. Must hold: each returns its parts or raises
`DecodeError`, nothing else, and a record packed by `pack_record` unpacks
to what was packed.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

from swarmnode.errors import DecodeError
from swarmnode.storage import layout as L


def check(data: bytes) -> None:
    cut = data[0] % (len(data) or 1) if data else 0
    key, value = data[:cut], data[cut:]
    readers = (
        lambda: L.unpack_record(value),
        lambda: L.unpack_member(key, value),
        lambda: L.unpack_merkle(key, value, key[:1][0] % 8 if key else 0),
        lambda: L.split_due_key(value),
        lambda: L.split_full_key(value),
        lambda: L.decode_name(value),
        lambda: L.names_of(key, L.unpack_record(value)),
    )
    for read in readers:
        with contextlib.suppress(DecodeError):
            read()
    try:
        rec = L.unpack_record(value)
    except DecodeError:
        return
    name = key.decode("utf-8", "replace").replace("\0", "") or "k"
    again = L.unpack_record(
        L.pack_record(rec.digest, rec.mxor, rec.due, rec.live, rec.header, name)
    )
    assert again[:5] == rec[:5]


if __name__ == "__main__":
    main(check)
