"""What each agent's live entries cost: bytes, entries and vectors, kept by the engine.

An entry is charged to the agent of its latest write (`Entry.agent`), with
the bytes it occupies here (its record and, for a set, its member records),
for as long as it is live. Every replica computes the same figures from the
same states, because the charge is a function of the replicated state alone:
no counter travels between nodes, so usage can neither drift nor be counted
twice, and a node sees a write made elsewhere in its usage as soon as the
write itself arrives (the gossip delay).

The engine charges and credits in the transaction that changes an entry, so
usage always matches the store. A set's member bytes are kept per set
(`member_bytes` database), so a set's whole size is known without reading
its members; an entry is credited exactly what it was charged, because both
are computed from the same stored figures.

Rows in the meta database: `usage:<agent>` -> [bytes, entries, vectors].
"""

from __future__ import annotations

import struct
from typing import Any

import lmdb
import msgpack

from swarmnode.crdt.entry import Entry

Usage = tuple[int, int, int]
"""(bytes, entries, vectors) charged to one agent."""

NO_USAGE: Usage = (0, 0, 0)
PREFIX = b"usage:"
_BE64 = struct.Struct(">q")


def vectors_of(entry: Entry) -> int:
    """1 if the entry holds a vector (in its register or any sibling), else 0."""
    if entry.reg is not None and not entry.reg.deleted and entry.reg.vector is not None:
        return 1
    if entry.mv is not None and any(v.vector is not None for v in entry.mv.versions.values()):
        return 1
    return 0


def member_bytes(txn: lmdb.Transaction, dbs: dict[str, Any], ekey: bytes) -> int:
    raw = txn.get(ekey, db=dbs["member_bytes"])
    return _BE64.unpack(raw)[0] if raw is not None else 0


def set_member_bytes(txn: lmdb.Transaction, dbs: dict[str, Any], ekey: bytes, n: int) -> None:
    if n:
        txn.put(ekey, _BE64.pack(n), db=dbs["member_bytes"])
    else:
        txn.delete(ekey, db=dbs["member_bytes"])


def load_usage(env: lmdb.Environment, dbs: dict[str, Any]) -> dict[str, list[int]]:
    """Every agent's usage as last committed."""
    out: dict[str, list[int]] = {}
    with env.begin() as txn, txn.cursor(db=dbs["meta"]) as cur:
        if cur.set_range(PREFIX):
            for k, v in cur:
                if not k.startswith(PREFIX):
                    break
                out[k[len(PREFIX) :].decode()] = list(msgpack.unpackb(v))
    return out


def store_usage(txn: lmdb.Transaction, dbs: dict[str, Any], agent: str, usage: list[int]) -> None:
    key = PREFIX + agent.encode()
    if any(usage):
        txn.put(key, msgpack.packb(usage), db=dbs["meta"])
    else:
        txn.delete(key, db=dbs["meta"])
