"""Reading one entry's record and set members inside an LMDB transaction.

Shared by the engine (inside its write transaction) and the readers: an
entry is one record (digest, member-digest XOR, due time, flags, header) plus,
for a set, one record per member, loaded all, some by name, or just the first
(enough to tell whether the set is live).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import lmdb
import msgpack

from swarmnode.crdt.codec import decode_dots, decode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.orset import ORSet
from swarmnode.storage import layout as L

ALL = None
"""`members=ALL`: load every member of a set."""


@dataclass
class Loaded:
    """An entry as read inside a transaction, with what is needed to rewrite it."""

    entry: Entry
    digest: bytes
    mxor: bytes
    due: int
    counted_live: bool
    record_size: int
    members: dict[str, tuple[frozenset, bytes]] = field(default_factory=dict)
    full: bool = False


def header_of(entry: Entry) -> Entry:
    """The entry with its set members left out: what the entry record stores."""
    if entry.orset is None:
        return entry
    return Entry(
        entry.ts,
        reg=entry.reg,
        mv=entry.mv,
        counter=entry.counter,
        orset=ORSet({}, entry.orset.cc, entry.orset.expires_at, entry.orset.expiry_ts),
        agent=entry.agent,
    )


def member_hash(member: str, enc: bytes) -> bytes:
    return L.hash16(member.encode("utf-8", "surrogatepass") + L.SEP + enc)


def load(
    txn: lmdb.Transaction,
    dbs: dict[str, Any],
    ekey: bytes,
    members: Iterable[str] | None,
    rec: bytes | None = None,
) -> Loaded | None:
    """The entry at `ekey` with `members` loaded; `rec` is its record if already read."""
    if rec is None:
        rec = txn.get(ekey, db=dbs["entries"])
        if rec is None:
            return None
    r = L.unpack_record(rec)
    entry = decode_entry(r.header)
    loaded = Loaded(entry, r.digest, r.mxor, r.due, r.live, len(ekey) + len(rec))
    if entry.orset is not None:
        mdb = dbs["members"]
        if members is ALL:
            loaded.full = True
            prefix = L.member_prefix(ekey)
            with txn.cursor(db=mdb) as cur:
                if cur.set_range(prefix):
                    for k, v in cur:
                        if not k.startswith(prefix):
                            break
                        _add_member(loaded, *L.unpack_member(k, bytes(v)))
        else:
            names = list(members)
            for m in names:
                mkey = L.member_key(ekey, m)
                raw = txn.get(mkey, db=mdb)
                if raw is not None:
                    _add_member(loaded, *L.unpack_member(mkey, bytes(raw)))
            load_first_member(txn, dbs, ekey, entry, loaded, skip=names)
    return loaded


def _add_member(loaded: Loaded, member: str, raw: bytes) -> None:
    dots = decode_dots(msgpack.unpackb(raw, use_list=True))
    loaded.members[member] = (dots, raw)
    loaded.entry.orset.elems[member] = dots


def load_first_member(
    txn: lmdb.Transaction,
    dbs: dict[str, Any],
    ekey: bytes,
    entry: Entry,
    loaded: Loaded | None = None,
    skip: Iterable[str] = (),
) -> None:
    """Load one member beyond `skip`: enough to tell whether a set stays live.

    Members with no dots are never stored, and the extra member rides along
    untouched by partial joins.
    """
    prefix = L.member_prefix(ekey)
    skip = set(skip)
    with txn.cursor(db=dbs["members"]) as cur:
        ok = cur.set_range(prefix)
        while ok and cur.key().startswith(prefix):
            member, raw = L.unpack_member(bytes(cur.key()), bytes(cur.value()))
            if member not in skip:
                if loaded is not None:
                    _add_member(loaded, member, raw)
                else:
                    entry.orset.elems[member] = decode_dots(msgpack.unpackb(raw))
                return
            ok = cur.next()
