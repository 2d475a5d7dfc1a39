"""The node's durable state: CRDT entries in one LMDB environment.

Reads run in any thread on their own read transactions. Writes arrive as
batches of operations (`storage.ops`) that `apply` runs in ONE write
transaction, so a batch shares one commit and one fsync (group commit); the
caller acknowledges the writes only after `apply` returns. The real runtime
calls `apply` from a single writer thread, the simulator inline.

Besides the entries themselves the transaction keeps, in step with every
change: an index of when each entry next needs the sweeper (expiry or
collection), a Merkle index (namespace, leaf, key) -> digest that anti-entropy
reads, a change feed for derived indexes, and per-namespace counts and bytes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from swarmnode.crdt.codec import decode_dots, decode_entry, encode_dots, encode_entry, packb
from swarmnode.crdt.entry import COUNTER, REGISTER, SET, Entry
from swarmnode.crdt.hlc import ClockSkewError, HybridLogicalClock, wall_ms
from swarmnode.crdt.mvreg import Version
from swarmnode.crdt.orset import ORSet
from swarmnode.crdt.values import InvalidValue, canonical, canonical_meta, pack_vector
from swarmnode.errors import (
    BadRequest,
    Conflict,
    DecodeError,
    InternalError,
    SwarmError,
    TooLarge,
    Unavailable,
    WrongType,
)
from swarmnode.replication.merkle import leaf_of
from swarmnode.storage import layout as L
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.namespaces import (
    BUILTINS,
    SYSTEM_NS,
    NamespaceDef,
    check_ns_name,
    check_ttl,
    make_definition,
)
from swarmnode.storage.ops import (
    Change,
    DefineNs,
    Delete,
    DeleteNs,
    Incr,
    Merge,
    Op,
    OpResult,
    Purge,
    Put,
    SAdd,
    SRem,
    Sweep,
)
from swarmnode.tagged_cache import TaggedCache

log = logging.getLogger("swarmnode.storage")

FORMAT = 1
MAX_MEMBERS_PER_OP = 10_000
# Per-actor totals travel as msgpack ints the codec bounds to 63 bits.
MAX_COUNTER_TOTAL = (1 << 63) - 1
SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class StoreLocked(SwarmError):
    code = "unavailable"


@dataclass
class Loaded:
    """An entry as read inside a write transaction, with what is needed to rewrite it."""

    entry: Entry
    digest: bytes
    mxor: bytes
    due: int
    counted_live: bool
    record_size: int
    members: dict[str, tuple[frozenset, bytes]] = field(default_factory=dict)
    full: bool = False


ALL = None  # `members=ALL`: load every member of a set


def _member_hash(member: str, enc: bytes) -> bytes:
    return L.hash16(member.encode("utf-8", "surrogatepass") + L.SEP + enc)


def _header_of(entry: Entry) -> Entry:
    if entry.orset is None:
        return entry
    return Entry(
        entry.ts,
        reg=entry.reg,
        mv=entry.mv,
        counter=entry.counter,
        orset=ORSet({}, entry.orset.cc, entry.orset.expires_at, entry.orset.expiry_ts),
    )


class Store:
    def __init__(
        self, path: Path | str, config: StoreConfig | None = None, *, node_id: str | None = None
    ) -> None:
        """Open (or create) the store at `path`.

        `node_id` names a store being created (the simulator derives ids from
        its seed); for an existing store it must match, since a node's id is
        fixed with its data.
        """
        self.path = Path(path).resolve()
        self._wanted_id = node_id
        self.config = config or StoreConfig()
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_file = self._acquire_lock()
        try:
            self.env = lmdb.open(
                str(self.path / "store"),
                map_size=self.config.map_size,
                max_dbs=len(L.DB_NAMES) + 1,
                subdir=True,
                sync=self.config.sync,
                metasync=self.config.sync,
                readahead=False,
                max_readers=512,
                mode=0o600,
            )
        except lmdb.Error as exc:
            self._release_lock()
            raise Unavailable(f"cannot open store at {self.path}: {exc}") from exc
        self.db = {name: self.env.open_db(name.encode()) for name in L.DB_NAMES}
        try:
            self._init_meta()
        except BaseException:
            self.close()
            raise
        self._purge_cursor: dict[str, bytes] = {}
        self._read_cache = TaggedCache(self.config.read_cache_bytes)

    # --- opening and closing ------------------------------------------------

    def _acquire_lock(self) -> Any:
        lock_path = self.path / "LOCK"
        fh = open(lock_path, "a+")  # noqa: SIM115 - held open for the life of the store
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise StoreLocked(
                f"data directory {self.path} is in use by another swarmnode (pid {holder}); "
                "stop it or choose another --data-dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return fh

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _init_meta(self) -> None:
        meta = self.db["meta"]
        with self.env.begin(write=True) as txn:
            fmt = txn.get(b"format", db=meta)
            if fmt is None:
                txn.put(b"format", str(FORMAT).encode(), db=meta)
            elif int(fmt) != FORMAT:
                raise Unavailable(f"store format {int(fmt)} at {self.path} is not {FORMAT}")
            node_id = txn.get(b"node_id", db=meta)
            if node_id is None:
                # A new id for new (or wiped) data: reusing an id whose state was
                # lost would let peers mistake new writes for ones they have seen.
                node_id = (self._wanted_id or os.urandom(8).hex()).encode()
                txn.put(b"node_id", node_id, db=meta)
                log.info("event=node_id_created node_id=%s path=%s", node_id.decode(), self.path)
            elif self._wanted_id is not None and node_id.decode() != self._wanted_id:
                raise Unavailable(
                    f"data directory {self.path} belongs to node {node_id.decode()}, not "
                    f"{self._wanted_id}; a node id is chosen when its data is created"
                )
            self.node_id: str = node_id.decode()
            last = txn.get(b"hlc", db=meta)
            self.hlc = HybridLogicalClock(self.config.max_clock_offset_ms, int(last) if last else 0)
            seq = txn.get(b"seq", db=meta)
            self.seq = int(seq) if seq else 0
            self._stats: dict[str, list[int]] = {}
            with txn.cursor(db=meta) as cur:
                if cur.set_range(b"stat:"):
                    for k, v in cur:
                        if not k.startswith(b"stat:"):
                            break
                        self._stats[k[5:].decode()] = list(msgpack.unpackb(v))
            self._ns_defs: dict[str, NamespaceDef] = {}
            with txn.cursor(db=self.db["entries"]) as cur:
                prefix = L.ns_prefix(SYSTEM_NS)
                if cur.set_range(prefix):
                    for k, v in cur:
                        if not k.startswith(prefix):
                            break
                        self._cache_ns_record(L.names_of(k, L.unpack_record(v))[1], v)
        self._dirty_stats: set[str] = set()

    def close(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
            self.env = None  # type: ignore[assignment]
        self._release_lock()

    # --- namespaces ----------------------------------------------------------

    def _cache_ns_record(self, name: str, record: bytes) -> None:
        entry = decode_entry(L.unpack_record(record)[4])
        if entry.reg is not None and not entry.reg.deleted:
            self._ns_defs[name] = NamespaceDef.from_value(name, entry.reg.value)

    def namespace(self, ns: str) -> NamespaceDef:
        found = self._ns_defs.get(ns)
        if found is not None:
            return found
        return BUILTINS.get(ns) or NamespaceDef(ns)

    def namespace_names(self) -> list[str]:
        """Namespaces that are defined (and not deleted), built in, or hold entries."""
        names = {n for n, d in self._ns_defs.items() if not d.deleted}
        names.update(n for n in BUILTINS if not self.namespace(n).deleted)
        names.update(n for n, s in self._stats.items() if s[1] > 0 and n != SYSTEM_NS)
        return sorted(names)

    def ns_stats(self, ns: str) -> dict[str, int]:
        stored, live, nbytes = self._stats.get(ns, [0, 0, 0])
        return {"entries": live, "stored": stored, "tombstones": stored - live, "bytes": nbytes}

    def data_namespaces(self) -> list[str]:
        """Namespaces with stored entries (tombstones included), the system one too."""
        return sorted(n for n, s in self._stats.items() if s[0] > 0)

    # --- reads ---------------------------------------------------------------

    def read(self) -> lmdb.Transaction:
        return self.env.begin(buffers=False)

    def live_entry(self, ns: str, entry: Entry, now_ms: int) -> bool:
        """Visible now, and not cleared by a namespace delete."""
        return entry.ts > self.namespace(ns).cleared_at and entry.visible(now_ms)

    def get(self, ns: str, key: str, txn: lmdb.Transaction | None = None) -> Entry | None:
        """The full stored entry (every set member loaded), live or not."""
        if txn is None:
            with self.read() as t:
                return self.get(ns, key, t)
        loaded = self._load(txn, L.entry_key(ns, key), ALL)
        return loaded.entry if loaded else None

    def get_header(self, ns: str, key: str, txn: lmdb.Transaction) -> Entry | None:
        """The entry with at most one set member loaded: enough to tell kind and liveness.

        Shared with other readers through the read cache: do not mutate it.
        """
        ekey = L.entry_key(ns, key)
        rec = txn.get(ekey, db=self.db["entries"])
        if rec is None:
            return None
        tag = rec[: L.DIGEST_SIZE]
        entry = self._read_cache.get(ekey, tag)
        if entry is not None:
            return entry
        loaded = self._load(txn, ekey, (), rec)
        assert loaded is not None  # given a record, _load always decodes it
        if loaded.entry.orset is None:  # a set header is completed member by member
            self._read_cache.put(ekey, loaded.entry, tag, nbytes=len(rec))
        return loaded.entry

    def scan(
        self, ns: str, txn: lmdb.Transaction, *, prefix: str = "", after: str | None = None
    ) -> Iterator[tuple[str, Entry]]:
        """Entries of a namespace in key order (headers, at most one set member each)."""
        bound = L.scan_prefix(ns, prefix)
        start = L.entry_key(ns, after) + b"\x00" if after is not None else bound
        with txn.cursor(db=self.db["entries"]) as cur:
            if not cur.set_range(start):
                return
            for k, v in cur:
                if not k.startswith(bound):
                    return
                rec = L.unpack_record(v)
                key = L.names_of(k, rec)[1]
                if not key.startswith(prefix):
                    continue
                entry = decode_entry(rec.header)
                if entry.orset is not None:
                    self._load_first_member(txn, k, entry)
                yield key, entry

    def members(self, ns: str, key: str, txn: lmdb.Transaction) -> list[str]:
        entry = self.get(ns, key, txn)
        return entry.orset.members() if entry and entry.orset else []

    def states(self, ns: str, keys: list[str]) -> list[tuple[str, bytes]]:
        """Full encoded states, for anti-entropy. Missing keys are left out."""
        out = []
        with self.read() as txn:
            for key in keys:
                entry = self.get(ns, key, txn)
                if entry is not None:
                    out.append((key, encode_entry(entry)))
        return out

    def leaf_entries(self, ns: str, first_leaf: int, last_leaf: int) -> list[tuple[str, bytes]]:
        out = []
        start = L.merkle_leaf_prefix(ns, first_leaf)
        bound = L.ns_prefix(ns)
        with self.read() as txn, txn.cursor(db=self.db["merkle"]) as cur:
            if cur.set_range(start):
                plen = len(bound)
                for k, v in cur:
                    if not k.startswith(bound):
                        break
                    leaf, key, digest = L.unpack_merkle(k, v, plen)
                    if leaf > last_leaf:
                        break
                    out.append((key, digest))
        return out

    def digests(self, ns: str) -> Iterator[tuple[str, bytes]]:
        """Every (key, digest) of a namespace, for building its Merkle tree at start-up."""
        bound = L.ns_prefix(ns)
        with self.read() as txn, txn.cursor(db=self.db["merkle"]) as cur:
            if cur.set_range(bound):
                for k, v in cur:
                    if not k.startswith(bound):
                        break
                    _, key, digest = L.unpack_merkle(k, v, len(bound))
                    yield key, digest

    def changes_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        out = []
        with self.read() as txn, txn.cursor(db=self.db["changes"]) as cur:
            if cur.set_range(L.seq_key(seq + 1)):
                for k, v in cur:
                    ns, key = L.split_full_key(v)
                    out.append((L.seq_from_key(k), ns, key))
                    if len(out) >= limit:
                        break
        return out

    def trim_changes(self, upto: int) -> int:
        """Drop change-feed records at or below `upto` minus the configured margin."""
        cutoff = upto - self.config.changes_keep
        if cutoff <= 0:
            return 0
        n = 0
        with self.env.begin(write=True) as txn, txn.cursor(db=self.db["changes"]) as cur:
            if cur.first():
                while cur.key() and L.seq_from_key(cur.key()) <= cutoff:
                    cur.delete()
                    n += 1
        return n

    def read_cache_stats(self) -> dict[str, int]:
        """Items, bytes, capacity, hits and misses of the decoded-entry cache of `get`."""
        return self._read_cache.stats()

    def disk_bytes(self) -> int:
        info = self.env.info()
        stat = self.env.stat()
        return int(info["last_pgno"] + 1) * int(stat["psize"])

    def snapshot(self, session_id: str, directory: Path) -> Path:
        """A consistent, compacted copy of the store (LMDB copies under one read txn)."""
        if not isinstance(session_id, str) or not SESSION_RE.match(session_id):
            raise BadRequest(
                "session_id must be 1-128 characters of letters, digits and _.- "
                "starting with a letter or digit"
            )
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = directory / session_id
        tmp = Path(tempfile.mkdtemp(prefix=f".{session_id}.", dir=directory))
        try:
            self.env.copy(str(tmp), compact=True)
            # A snapshot carries no node id: a node started from it as a backup
            # takes a fresh one, since its old id's later dots live on at peers.
            copy = lmdb.open(str(tmp), max_dbs=len(L.DB_NAMES) + 1, subdir=True)
            try:
                with copy.begin(write=True) as txn:
                    txn.delete(b"node_id", db=copy.open_db(b"meta", txn=txn))
            finally:
                copy.close()
            # Swap in the new copy; the old one is removed only once replaced.
            old = None
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{session_id}.old.", dir=directory))
                final.rename(old / "snapshot")
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    # --- loading inside a write transaction ---------------------------------

    def _load(
        self,
        txn: lmdb.Transaction,
        ekey: bytes,
        members: Iterable[str] | None,
        rec: bytes | None = None,
    ) -> Loaded | None:
        """The entry at `ekey` with `members` loaded; `rec` is its record if already read."""
        if rec is None:
            rec = txn.get(ekey, db=self.db["entries"])
            if rec is None:
                return None
        r = L.unpack_record(rec)
        entry = decode_entry(r.header)
        loaded = Loaded(entry, r.digest, r.mxor, r.due, r.live, len(ekey) + len(rec))
        if entry.orset is not None:
            mdb = self.db["members"]
            if members is ALL:
                loaded.full = True
                prefix = L.member_prefix(ekey)
                with txn.cursor(db=mdb) as cur:
                    if cur.set_range(prefix):
                        for k, v in cur:
                            if not k.startswith(prefix):
                                break
                            self._add_member(loaded, *L.unpack_member(k, bytes(v)))
            else:
                names = list(members)
                for m in names:
                    mkey = L.member_key(ekey, m)
                    raw = txn.get(mkey, db=mdb)
                    if raw is not None:
                        self._add_member(loaded, *L.unpack_member(mkey, bytes(raw)))
                self._load_first_member(txn, ekey, entry, loaded, skip=names)
        return loaded

    def _add_member(self, loaded: Loaded, member: str, raw: bytes) -> None:
        dots = decode_dots(msgpack.unpackb(raw, use_list=True))
        loaded.members[member] = (dots, raw)
        loaded.entry.orset.elems[member] = dots

    def _load_first_member(
        self,
        txn: lmdb.Transaction,
        ekey: bytes,
        entry: Entry,
        loaded: Loaded | None = None,
        skip: Iterable[str] = (),
    ) -> None:
        # One member beyond those an operation touches is enough to tell
        # whether a set stays live (members with no dots are never stored); it
        # rides along untouched by partial joins.
        prefix = L.member_prefix(ekey)
        skip = set(skip)
        with txn.cursor(db=self.db["members"]) as cur:
            ok = cur.set_range(prefix)
            while ok and cur.key().startswith(prefix):
                member, raw = L.unpack_member(bytes(cur.key()), bytes(cur.value()))
                if member not in skip:
                    if loaded is not None:
                        self._add_member(loaded, member, raw)
                    else:
                        entry.orset.elems[member] = decode_dots(msgpack.unpackb(raw))
                    return
                ok = cur.next()

    # --- the write path ------------------------------------------------------

    def apply(self, ops: list[Op], physical_ms: int) -> list[OpResult]:
        """Apply a batch in one write transaction (one commit, one fsync)."""
        results: list[OpResult] = []
        seq_before = self.seq
        try:
            with self.env.begin(write=True) as txn:
                for op in ops:
                    results.append(self._apply_one(txn, op, physical_ms))
                txn.put(b"hlc", str(self.hlc.last).encode(), db=self.db["meta"])
                txn.put(b"seq", str(self.seq).encode(), db=self.db["meta"])
                for ns in self._dirty_stats:
                    txn.put(b"stat:" + ns.encode(), packb(self._stats[ns]), db=self.db["meta"])
        except lmdb.MapFullError:
            self._rollback_memory(seq_before)
            err = Unavailable(
                f"store is full (map_size {self.config.map_size} bytes); raise map_size"
            )
            return [OpResult(error=err) for _ in ops]
        except lmdb.Error as exc:
            self._rollback_memory(seq_before)
            log.error("event=commit_failed error=%r", exc)
            err = Unavailable(f"storage error: {exc}")
            return [OpResult(error=err) for _ in ops]
        self._dirty_stats.clear()
        for res in results:
            for ch in res.changes:
                if ch.ns == SYSTEM_NS:
                    self._refresh_ns(ch.key)
        return results

    def _rollback_memory(self, seq_before: int) -> None:
        """A failed commit leaves LMDB as it was; put the in-memory mirrors back too."""
        self._init_meta()
        self.seq = max(self.seq, seq_before)

    def _refresh_ns(self, name: str) -> None:
        with self.read() as txn:
            rec = txn.get(L.entry_key(SYSTEM_NS, name), db=self.db["entries"])
        if rec is None:
            self._ns_defs.pop(name, None)
            return
        entry = decode_entry(L.unpack_record(rec).header)
        if entry.reg is not None and not entry.reg.deleted:
            self._ns_defs[name] = NamespaceDef.from_value(name, entry.reg.value)

    def _apply_one(self, txn: lmdb.Transaction, op: Op, now_ms: int) -> OpResult:
        try:
            with self.env.begin(write=True, parent=txn) as child:
                return self._dispatch(child, op, now_ms)
        except SwarmError as exc:
            return OpResult(error=exc)
        except ClockSkewError as exc:
            return OpResult(error=BadRequest(f"rejected: {exc}", code="clock_skew"))
        except (InvalidValue, DecodeError) as exc:
            return OpResult(error=BadRequest(str(exc)))
        except lmdb.MapFullError:
            raise
        except Exception as exc:
            log.exception("event=op_failed op=%s", type(op).__name__)
            return OpResult(error=InternalError(f"{type(op).__name__} failed: {exc!r}"))

    def _dispatch(self, txn: lmdb.Transaction, op: Op, now_ms: int) -> OpResult:
        handler = {
            Merge: self._merge,
            Sweep: self._sweep,
            Purge: self._purge,
            Put: self._put,
            Delete: self._delete,
            Incr: self._incr,
            SAdd: self._sadd,
            SRem: self._srem,
            DefineNs: self._define_ns,
            DeleteNs: self._delete_ns,
        }.get(type(op))
        if handler is None:
            raise InternalError(f"unknown operation {type(op).__name__}")
        return handler(txn, op, now_ms)

    # --- helpers shared by the operations -----------------------------------

    def _expiry(self, ns: NamespaceDef, ttl: Any, ts: int) -> int | None:
        ttl_s = check_ttl(ttl)
        if ttl_s is None:
            ttl_s = ns.ttl
        if not ttl_s:
            return None
        return wall_ms(ts) + max(1, int(ttl_s * 1000))

    def _strip_clock(self, now_ms: int) -> int:
        """The time by which the sweeper strips expired entries: local time minus the max offset.

        Reads hide an entry at its expiry by the local clock. Stripping makes a
        state that spreads to every replica, so it waits until no replica whose
        clock is within the max offset could still be serving the entry.
        """
        return now_ms - self.config.max_clock_offset_ms

    def _next_due(self, entry: Entry, now_ms: int) -> int:
        """When the sweeper must next look at `entry` (0: never).

        Twice per expiry: at the expiry itself, so the live counts and watchers
        learn of it at once (nothing is stripped yet), and once the max offset
        has passed, to strip it.
        """
        offset = self.config.max_clock_offset_ms
        due = entry.next_due(self._strip_clock(now_ms), self.config.grace_ms)
        due = 0 if due is None else due + offset
        hidden_at = entry.next_expiry(now_ms)
        if hidden_at is not None and (not due or hidden_at < due):
            due = hidden_at
        return due

    def _current(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        members: Iterable[str] | None,
        now_ms: int,
    ) -> tuple[Loaded | None, list[Change]]:
        """The local entry, or None if absent; dead-and-collectable entries are dropped first."""
        loaded = self._load(txn, ekey, members)
        if loaded is None:
            return None, []
        entry = loaded.entry
        cleared = entry.ts <= self.namespace(ns).cleared_at and ns != SYSTEM_NS
        if cleared or entry.collectable(now_ms, self.config.grace_ms):
            kind = "purge" if cleared else "collect"
            change = self._drop(txn, ns, key, ekey, loaded, kind, now_ms)
            return None, [change]
        return loaded, []

    def _local_write(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        cur: Loaded | None,
        delta: Entry,
        kind: str,
        now_ms: int,
        touched: Iterable[str] | None = (),
    ) -> Change:
        base = cur.entry if cur else Entry()
        new = base.join(delta)
        change = self._write(txn, ns, key, ekey, cur, new, touched, kind, "local", now_ms)
        change.delta = delta
        return change

    def _write(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        old: Loaded | None,
        new: Entry,
        touched: Iterable[str] | None,
        kind: str,
        origin: str,
        now_ms: int,
    ) -> Change:
        mdb = self.db["members"]
        mxor = old.mxor if old else L.ZERO_DIGEST
        nbytes = -(old.record_size if old else 0)
        if new.orset is not None or (old and old.members):
            new_elems = new.orset.elems if new.orset is not None else {}
            if touched is ALL:
                names: Iterable[str] = set(new_elems) | set(old.members if old else ())
            else:
                names = touched
            for m in names:
                old_raw = old.members[m][1] if old and m in old.members else None
                dots = new_elems.get(m)
                new_raw = encode_dots(dots) if dots else None
                if old_raw == new_raw:
                    continue
                mk = L.member_key(ekey, m)
                if old_raw is not None:
                    mxor = L.xor16(mxor, _member_hash(m, old_raw))
                    nbytes -= len(mk) + len(L.pack_member(m, old_raw))
                    txn.delete(mk, db=mdb)
                if new_raw is not None:
                    mxor = L.xor16(mxor, _member_hash(m, new_raw))
                    value = L.pack_member(m, new_raw)
                    nbytes += len(mk) + len(value)
                    txn.put(mk, value, db=mdb)
        header = encode_entry(_header_of(new))
        digest = L.xor16(L.hash16(header), mxor)
        due = self._next_due(new, now_ms)
        old_due = old.due if old else 0
        if old_due != due:
            if old_due:
                txn.delete(L.due_key(old_due, ekey), db=self.db["due"])
            if due:
                txn.put(L.due_key(due, ekey), b"", db=self.db["due"])
        visible_before = bool(old) and old.counted_live
        visible_after = self.live_entry(ns, new, now_ms)
        record = L.pack_record(digest, mxor, due, visible_after, header, key)
        txn.put(ekey, record, db=self.db["entries"])
        nbytes += len(ekey) + len(record)
        if old is None or old.digest != digest:
            txn.put(
                L.merkle_key(ns, leaf_of(key), key),
                L.merkle_value(key, digest),
                db=self.db["merkle"],
            )
        self._count(ns, 0 if old else 1, int(visible_after) - int(visible_before), nbytes)
        change = self._changed(
            txn,
            ns,
            key,
            ekey,
            kind,
            origin,
            old.digest if old else None,
            digest,
            visible_before,
            visible_after,
        )
        change.entry = new
        return change

    def _drop(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        old: Loaded,
        kind: str,
        now_ms: int,
    ) -> Change:
        nbytes = old.record_size
        prefix = L.member_prefix(ekey)
        with txn.cursor(db=self.db["members"]) as cur:
            if cur.set_range(prefix):
                while cur.key() and cur.key().startswith(prefix):
                    nbytes += len(cur.key()) + len(cur.value())
                    cur.delete()
        txn.delete(ekey, db=self.db["entries"])
        if old.due:
            txn.delete(L.due_key(old.due, ekey), db=self.db["due"])
        txn.delete(L.merkle_key(ns, leaf_of(key), key), db=self.db["merkle"])
        visible_before = old.counted_live
        self._count(ns, -1, -int(visible_before), -nbytes)
        return self._changed(
            txn, ns, key, ekey, kind, "sweep", old.digest, None, visible_before, False
        )

    def _changed(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        kind: str,
        origin: str,
        old_digest: bytes | None,
        new_digest: bytes | None,
        visible_before: bool,
        visible_after: bool,
    ) -> Change:
        self.seq += 1
        txn.put(L.seq_key(self.seq), L.full_entry_key(ns, key), db=self.db["changes"])
        return Change(
            ns,
            key,
            kind,
            origin,
            old_digest,
            new_digest,
            visible_before,
            visible_after,
            seq=self.seq,
        )

    def _count(self, ns: str, stored: int, live: int, nbytes: int) -> None:
        s = self._stats.setdefault(ns, [0, 0, 0])
        s[0] += stored
        s[1] += live
        s[2] += nbytes
        self._dirty_stats.add(ns)

    def _check_members(self, members: Any) -> list[str]:
        if isinstance(members, str):
            members = [members]
        if not isinstance(members, list) or not members:
            raise BadRequest("members must be a non-empty list of strings")
        if len(members) > MAX_MEMBERS_PER_OP:
            raise TooLarge(f"at most {MAX_MEMBERS_PER_OP} members per operation")
        for m in members:
            if not isinstance(m, str):
                raise BadRequest("set members must be strings")
            if "\x00" in m:
                raise BadRequest("set members must not contain NUL characters")
            if len(m.encode("utf-8", "surrogatepass")) > self.config.max_member_bytes:
                raise TooLarge(f"a set member is limited to {self.config.max_member_bytes} bytes")
        return members

    @staticmethod
    def _refuse_other_kinds(entry: Entry | None, kind: str, now_ms: int, key: str) -> None:
        if entry is None:
            return
        others = [k for k in entry.live_kinds(now_ms) if k != kind]
        if others:
            raise WrongType(f"{key!r} holds a {others[0]}, not a {kind}")

    # --- client operations ---------------------------------------------------

    def _put(self, txn: lmdb.Transaction, op: Put, now_ms: int) -> OpResult:
        ns = self.namespace(check_ns_name(op.ns))
        L.check_key(op.key, self.config.max_key_bytes)
        value = canonical(op.value)
        size = len(packb(value))
        if size > self.config.max_value_bytes:
            raise TooLarge(f"value is {size} bytes; the limit is {self.config.max_value_bytes}")
        meta = canonical_meta(op.meta)
        if meta is not None and len(packb(meta)) > self.config.max_value_bytes:
            raise TooLarge("meta is larger than the value size limit")
        vector = pack_vector(op.vector)
        if vector is not None:
            if ns.dim is None:
                raise BadRequest(
                    f"namespace {ns.name!r} has no vector dimension; "
                    "declare one with ns_init(dim=...) first"
                )
            if len(vector) // 4 != ns.dim:
                raise BadRequest(
                    f"vector has {len(vector) // 4} dimensions; "
                    f"namespace {ns.name!r} expects {ns.dim}"
                )
        ekey = L.entry_key(op.ns, op.key)
        cur, changes = self._current(txn, op.ns, op.key, ekey, (), now_ms)
        entry = cur.entry if cur else None
        self._refuse_other_kinds(entry, REGISTER, now_ms, op.key)
        if op.if_absent and entry is not None and self.live_entry(op.ns, entry, now_ms):
            raise Conflict(f"{op.key!r} already exists in {op.ns!r}")
        ts = self.hlc.now(now_ms)
        expires_at = self._expiry(ns, op.ttl, ts)
        base = entry or Entry()
        if ns.policy == "lww" or op.ns == SYSTEM_NS:
            delta = base.put_lww(ts, self.node_id, value, meta, vector, expires_at)
        else:
            version = Version(value, ts, meta, vector, expires_at)
            delta = base.put_mv(ts, base.actor(self.node_id, ts), version)
        change = self._local_write(txn, op.ns, op.key, ekey, cur, delta, "put", now_ms)
        return OpResult({"ts": ts, "expires_at": expires_at}, changes=[*changes, change])

    def _delete(self, txn: lmdb.Transaction, op: Delete, now_ms: int) -> OpResult:
        check_ns_name(op.ns)
        L.check_key(op.key, self.config.max_key_bytes)
        ekey = L.entry_key(op.ns, op.key)
        cur, changes = self._current(txn, op.ns, op.key, ekey, ALL, now_ms)
        if cur is None or not self.live_entry(op.ns, cur.entry, now_ms):
            return OpResult({"deleted": False}, changes=changes)
        ts = self.hlc.now(now_ms)
        delta = cur.entry.delete(ts, self.node_id)
        change = self._local_write(txn, op.ns, op.key, ekey, cur, delta, "delete", now_ms, ALL)
        return OpResult({"deleted": True}, changes=[*changes, change])

    def _incr(self, txn: lmdb.Transaction, op: Incr, now_ms: int) -> OpResult:
        ns = self.namespace(check_ns_name(op.ns))
        L.check_key(op.key, self.config.max_key_bytes)
        if isinstance(op.by, bool) or not isinstance(op.by, int):
            raise BadRequest("by must be an integer")
        if abs(op.by) >= 1 << 62:
            raise BadRequest(f"by must be between {-(1 << 62) + 1} and {(1 << 62) - 1}")
        ekey = L.entry_key(op.ns, op.key)
        cur, changes = self._current(txn, op.ns, op.key, ekey, (), now_ms)
        entry = cur.entry if cur else Entry()
        self._refuse_other_kinds(entry, COUNTER, now_ms, op.key)
        ts = self.hlc.now(now_ms)
        delta = entry.incr(
            ts, entry.actor(self.node_id, ts), op.by, self._expiry(ns, op.ttl, ts), now_ms
        )
        totals = [*delta.counter.p.values(), *delta.counter.n.values()]
        if max(totals, default=0) > MAX_COUNTER_TOTAL:
            raise BadRequest("this increment would overflow the counter's 63-bit totals")
        change = self._local_write(txn, op.ns, op.key, ekey, cur, delta, "incr", now_ms)
        value = entry.join(delta).counter.value()
        return OpResult({"value": value}, changes=[*changes, change])

    def _set_target(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        members: list[str],
        now_ms: int,
    ) -> tuple[Loaded | None, list[Change], Iterable[str] | None]:
        cur, changes = self._current(txn, ns, key, ekey, members, now_ms)
        if cur is not None and cur.entry.orset is not None:
            s = cur.entry.orset
            if s.live() and not s.visible(now_ms):
                # An expired set is cleared before it is written again: that
                # touches every member, so load them all.
                cur, more = self._current(txn, ns, key, ekey, ALL, now_ms)
                return cur, changes + more, ALL
        return cur, changes, members

    def _sadd(self, txn: lmdb.Transaction, op: SAdd, now_ms: int) -> OpResult:
        ns = self.namespace(check_ns_name(op.ns))
        L.check_key(op.key, self.config.max_key_bytes)
        members = self._check_members(op.members)
        ekey = L.entry_key(op.ns, op.key)
        cur, changes, touched = self._set_target(txn, op.ns, op.key, ekey, members, now_ms)
        entry = cur.entry if cur else Entry()
        self._refuse_other_kinds(entry, SET, now_ms, op.key)
        was_visible = entry.orset is not None and entry.orset.visible(now_ms)
        before = {m for m in members if was_visible and entry.orset and entry.orset.elems.get(m)}
        ts = self.hlc.now(now_ms)
        expires_at = self._expiry(ns, op.ttl, ts)
        delta = entry.sadd(ts, entry.actor(self.node_id, ts), members, expires_at, now_ms)
        if touched is not ALL:
            touched = members
        change = self._local_write(txn, op.ns, op.key, ekey, cur, delta, "sadd", now_ms, touched)
        return OpResult({"added": len(set(members) - before)}, changes=[*changes, change])

    def _srem(self, txn: lmdb.Transaction, op: SRem, now_ms: int) -> OpResult:
        check_ns_name(op.ns)
        L.check_key(op.key, self.config.max_key_bytes)
        members = self._check_members(op.members)
        ekey = L.entry_key(op.ns, op.key)
        cur, changes = self._current(txn, op.ns, op.key, ekey, members, now_ms)
        entry = cur.entry if cur else None
        self._refuse_other_kinds(entry, SET, now_ms, op.key)
        if entry is None or entry.orset is None or not entry.orset.visible(now_ms):
            return OpResult({"removed": 0}, changes=changes)
        present = [m for m in members if entry.orset.elems.get(m)]
        if not present:
            return OpResult({"removed": 0}, changes=changes)
        ts = self.hlc.now(now_ms)
        delta = entry.srem(ts, present)
        change = self._local_write(txn, op.ns, op.key, ekey, cur, delta, "srem", now_ms, present)
        return OpResult({"removed": len(present)}, changes=[*changes, change])

    def _define_ns(self, txn: lmdb.Transaction, op: DefineNs, now_ms: int) -> OpResult:
        name = check_ns_name(op.ns)
        current = self.namespace(name)
        if current.deleted:
            current = NamespaceDef.from_value(name, {"cleared_at": current.cleared_at})
        definition = make_definition(name, op.args, current)
        if current.dim is not None and definition.dim != current.dim:
            raise Conflict(
                f"namespace {name!r} has vector dimension {current.dim}; "
                "delete the namespace to change it"
            )
        return self._write_ns(txn, definition, now_ms)

    def _delete_ns(self, txn: lmdb.Transaction, op: DeleteNs, now_ms: int) -> OpResult:
        name = check_ns_name(op.ns)
        ts = self.hlc.now(now_ms)
        definition = NamespaceDef.from_value(name, {"deleted": True, "cleared_at": ts})
        result = self._write_ns(txn, definition, now_ms, ts)
        result.value = {"ns": name, "deleted": True, "cleared_at": ts}
        return result

    def _write_ns(
        self, txn: lmdb.Transaction, definition: NamespaceDef, now_ms: int, ts: int | None = None
    ) -> OpResult:
        ekey = L.entry_key(SYSTEM_NS, definition.name)
        cur, changes = self._current(txn, SYSTEM_NS, definition.name, ekey, (), now_ms)
        ts = ts or self.hlc.now(now_ms)
        delta = Entry().put_lww(ts, self.node_id, definition.to_value())
        change = self._local_write(txn, SYSTEM_NS, definition.name, ekey, cur, delta, "ns", now_ms)
        self._ns_defs[definition.name] = definition
        return OpResult(definition.public(), changes=[*changes, change])

    # --- replication and housekeeping ----------------------------------------

    def _merge(self, txn: lmdb.Transaction, op: Merge, now_ms: int) -> OpResult:
        check_ns_name(op.ns, allow_system=True)
        L.check_key(op.key, self.config.max_key_bytes)
        incoming = op.state
        if op.ns != SYSTEM_NS and incoming.ts <= self.namespace(op.ns).cleared_at:
            return OpResult({"applied": False})
        if incoming.collectable(now_ms, self.config.grace_ms):
            return OpResult({"applied": False})
        self.hlc.update(incoming.ts, now_ms)
        reg = incoming.reg
        limit = now_ms + self.config.max_clock_offset_ms
        stripped = reg is not None and reg.deleted and reg.expires_at is not None
        if stripped and reg.expires_at > limit:
            # Stripped by a peer whose clock runs ahead: taking it would hide the
            # value here before its time. Anti-entropy brings it again later.
            raise ClockSkewError(reg.expires_at, now_ms, self.config.max_clock_offset_ms)
        ekey = L.entry_key(op.ns, op.key)
        # A mutator delta names every set member it touches; a full state does not.
        names: Iterable[str] | None = ALL
        if not op.full:
            names = list(incoming.orset.elems) if incoming.orset is not None else ()
        cur, changes = self._current(txn, op.ns, op.key, ekey, names, now_ms)
        base = cur.entry if cur else Entry()
        new = base.join(incoming)
        touched = ALL if names is ALL else list(names)
        change = self._write_if_changed(txn, op.ns, op.key, ekey, cur, new, touched, now_ms)
        if change is None:
            return OpResult({"applied": False}, changes=changes)
        return OpResult({"applied": True}, changes=[*changes, change])

    def _write_if_changed(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        cur: Loaded | None,
        new: Entry,
        touched: Iterable[str] | None,
        now_ms: int,
    ) -> Change | None:
        if cur is not None and new == cur.entry:
            return None
        return self._write(txn, ns, key, ekey, cur, new, touched, "merge", "remote", now_ms)

    def _sweep(self, txn: lmdb.Transaction, op: Sweep, now_ms: int) -> OpResult:
        limit = op.limit
        changes: list[Change] = []
        done = 0
        due_db = self.db["due"]
        while done < limit:
            with txn.cursor(db=due_db) as cur:
                if not cur.first():
                    break
                due_ms, ekey = L.split_due_key(cur.key())
            if due_ms > now_ms:
                break
            done += 1
            txn.delete(L.due_key(due_ms, ekey), db=due_db)
            rec = txn.get(ekey, db=self.db["entries"])
            if rec is None:
                continue
            ns, key = L.names_of(ekey, L.unpack_record(rec))
            loaded, dropped = self._current(txn, ns, key, ekey, ALL, now_ms)
            changes.extend(dropped)
            if loaded is None:
                continue
            # The due record is gone; _write files the next one from scratch.
            loaded.due = 0
            delta = loaded.entry.expire(self._strip_clock(now_ms))
            new = loaded.entry.join(delta) if delta is not None else loaded.entry
            change = self._write(txn, ns, key, ekey, loaded, new, ALL, "expire", "sweep", now_ms)
            if delta is not None and (delta.counter is not None or delta.orset is not None):
                # A counter's or set's expiry is extended by concurrent writes, so
                # replicas can strip different things: gossip it like a delete.
                change.delta = delta
            if change.old_digest != change.new_digest or change.visible_before:
                changes.append(change)
            if self._next_due(new, now_ms) == now_ms:
                raise InternalError(f"entry {ns}/{key} stays due after its sweep")
        return OpResult({"processed": done}, changes=changes, more=done >= limit)

    def _purge(self, txn: lmdb.Transaction, op: Purge, now_ms: int) -> OpResult:
        cleared_at = self.namespace(op.ns).cleared_at
        changes: list[Change] = []
        seen = 0
        start = self._purge_cursor.get(op.ns, L.ns_prefix(op.ns))
        bound = L.ns_prefix(op.ns)
        last = None
        with txn.cursor(db=self.db["entries"]) as cur:
            ok = cur.set_range(start)
            keys = []
            while ok and cur.key().startswith(bound) and len(keys) < op.limit:
                keys.append(bytes(cur.key()))
                ok = cur.next()
        for ekey in keys:
            seen += 1
            last = ekey
            rec = txn.get(ekey, db=self.db["entries"])
            if rec is None or decode_entry(L.unpack_record(rec).header).ts > cleared_at:
                continue
            key = L.names_of(ekey, L.unpack_record(rec))[1]
            loaded = self._load(txn, ekey, ALL)
            changes.append(self._drop(txn, op.ns, key, ekey, loaded, "purge", now_ms))
        more = seen >= op.limit
        if more and last is not None:
            self._purge_cursor[op.ns] = last + b"\x00"
        else:
            self._purge_cursor.pop(op.ns, None)
        return OpResult({"purged": len(changes)}, changes=changes, more=more)
