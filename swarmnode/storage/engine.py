"""The single writer: applies batches of operations in one LMDB transaction each.

The engine stores and indexes; it decides nothing about what a write means.
For a client write it loads the current entry (dropping it first if it was
collectable), asks the command layer for the delta, joins it and writes the
record, its set members, the due index, the Merkle index, the change feed and
the namespace counts, all in the same transaction. States from peers are
joined the same way (`replication/merge.py` says whether to take them), and
the sweeper's and purge's operations live here because they are bookkeeping of
the stored data itself.

One thread calls `apply` (the writer thread for real, the simulator's
committer inline). A failed operation leaves no trace: its writes and its
in-memory effects (counts, definitions, change-feed positions, the clock) are
rolled back while the others of its batch stand, and nothing in memory
changes until the batch's transaction has committed. A batch of client
commands and peers' states (merges), which almost never fail, first runs
straight in the batch's transaction with one scratch of effects; only if one
of its operations fails is that attempt aborted and the batch run again with
each operation in a nested transaction and a scratch of its own (what every
other batch gets, and the next few batches after such a failure), so the
common batch pays neither a nested commit nor a scratch per write.
After each commit the engine publishes a new `Catalog`, which every other
thread reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import lmdb

from swarmnode import commands
from swarmnode.archive import records as archived
from swarmnode.commands import ClockReading, CommandContext
from swarmnode.crdt.codec import decode_entry, encode_dots, encode_entry, packb
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import ClockSkewError, HybridLogicalClock
from swarmnode.crdt.values import InvalidValue
from swarmnode.errors import BadRequest, DecodeError, InternalError, SwarmError, Unavailable
from swarmnode.placement.hashing import partition_of
from swarmnode.replication import merge as replicated
from swarmnode.replication.merkle import leaf_of
from swarmnode.storage import layout as L
from swarmnode.storage.catalog import Catalog
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.entries import ALL, Loaded, header_of, load, member_hash
from swarmnode.storage.namespaces import AGENTS_NS, SYSTEM_NS, NamespaceDef, check_ns_name
from swarmnode.storage.ops import (
    Change,
    Delete,
    DropKeys,
    Merge,
    Op,
    OpResult,
    Purge,
    Put,
    SetMeta,
    Sweep,
)
from swarmnode.storage.usage import (
    load_usage,
    member_bytes,
    set_member_bytes,
    store_usage,
    vectors_of,
)

log = logging.getLogger("swarmnode.storage")

CAREFUL_AFTER_FAILURE = 8
"""After a batch's shared attempt failed, this many batches skip it: a workload whose
writes often fail (contended conditional puts) does not pay for every batch twice."""


@dataclass
class _Effects:
    """In-memory effects of writes not yet committed: one per operation, one per batch."""

    seq: int
    counts: dict[str, list[int]] = field(default_factory=dict)
    definitions: dict[str, NamespaceDef | None] = field(default_factory=dict)
    parts: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    """Counts per partition of sharded namespaces."""
    meta: dict[bytes, bytes] = field(default_factory=dict)
    usage: dict[str, list[int]] = field(default_factory=dict)
    """Per agent: change of (bytes, entries, vectors) charged (`storage/usage.py`)."""

    def count(self, ns: str, stored: int, live: int, nbytes: int) -> None:
        c = self.counts.setdefault(ns, [0, 0, 0])
        c[0] += stored
        c[1] += live
        c[2] += nbytes

    def count_partition(self, part: tuple[str, int], stored: int, live: int, nbytes: int) -> None:
        c = self.parts.setdefault(part, [0, 0, 0])
        c[0] += stored
        c[1] += live
        c[2] += nbytes

    def charge(self, agent: str | None, nbytes: int, entries: int, vectors: int) -> None:
        if agent is None:
            return
        u = self.usage.setdefault(agent, [0, 0, 0])
        u[0] += nbytes
        u[1] += entries
        u[2] += vectors

    def absorb(self, other: _Effects) -> None:
        self.seq = other.seq
        for ns, (s, lv, b) in other.counts.items():
            self.count(ns, s, lv, b)
        for part, (s, lv, b) in other.parts.items():
            self.count_partition(part, s, lv, b)
        self.definitions.update(other.definitions)
        self.meta.update(other.meta)
        for agent, (b, e, v) in other.usage.items():
            self.charge(agent, b, e, v)


class Engine:
    def __init__(
        self,
        env: lmdb.Environment,
        dbs: dict[str, Any],
        config: StoreConfig,
        node_id: str,
        hlc: HybridLogicalClock,
        *,
        seq: int,
        definitions: dict[str, NamespaceDef],
        counts: dict[str, list[int]],
        leaf_bits: int,
        partition_counts: dict[tuple[str, int], list[int]] | None = None,
    ) -> None:
        self.env = env
        self.db = dbs
        self.config = config
        self.node_id = node_id
        self.hlc = hlc
        self.leaf_bits = leaf_bits
        self._seq = seq
        self._definitions = definitions
        self._counts = counts
        self._part_counts = partition_counts if partition_counts is not None else {}
        self._purge_cursor: dict[str, bytes] = {}
        self._careful = 0
        """Batches still to run operation by operation since a shared attempt failed."""
        self._usage = load_usage(env, dbs)
        self.catalog = Catalog.of(
            definitions, counts, seq, partition_counts=self._part_counts, usage=self._usage
        )

    # --- batches ---------------------------------------------------------------

    def apply(self, ops: list[Op], physical_ms: int) -> list[OpResult]:
        """Apply a batch in one write transaction (one commit, one fsync)."""
        hlc_before = self.hlc.last
        if self._careful:
            self._careful -= 1
        elif all(commands.is_command(op) or type(op) is Merge for op in ops):
            try:
                return self._commit(ops, physical_ms, shared=True)
            except _Failed:
                self.hlc.last = hlc_before
                self._careful = CAREFUL_AFTER_FAILURE
        return self._commit(ops, physical_ms, shared=False)

    def _commit(self, ops: list[Op], physical_ms: int, *, shared: bool) -> list[OpResult]:
        """One transaction for the batch. `shared`: every operation writes straight into it
        and into the batch's effects, and the first one that fails aborts it all (`_Failed`);
        otherwise each runs in a nested transaction and fails alone."""
        results: list[OpResult] = []
        batch = _Effects(self._seq)
        hlc_before = self.hlc.last
        try:
            with self.env.begin(write=True) as txn:
                if shared:
                    for op in ops:
                        results.append(self._apply_shared(txn, op, physical_ms, batch))
                else:
                    for op in ops:
                        results.append(self._apply_one(txn, op, physical_ms, batch))
                meta = self.db["meta"]
                txn.put(b"hlc", str(self.hlc.last).encode(), db=meta)
                txn.put(b"seq", str(batch.seq).encode(), db=meta)
                for ns, (s, lv, b) in batch.counts.items():
                    base = self._counts.get(ns, (0, 0, 0))
                    txn.put(
                        b"stat:" + ns.encode(),
                        packb([base[0] + s, base[1] + lv, base[2] + b]),
                        db=meta,
                    )
                for part, (s, lv, b) in batch.parts.items():
                    base = self._part_counts.get(part, (0, 0, 0))
                    txn.put(
                        L.partition_stat_key(*part),
                        packb([base[0] + s, base[1] + lv, base[2] + b]),
                        db=meta,
                    )
                for name, value in batch.meta.items():
                    txn.put(name, value, db=meta)
                for agent, delta in batch.usage.items():
                    had = self._usage.get(agent, (0, 0, 0))
                    store_usage(
                        txn, self.db, agent, [h + d for h, d in zip(had, delta, strict=True)]
                    )
        except lmdb.MapFullError:
            self.hlc.last = hlc_before
            err = Unavailable(
                f"store is full (map_size {self.config.map_size} bytes); raise map_size"
            )
            return [OpResult(error=err) for _ in ops]
        except lmdb.Error as exc:
            self.hlc.last = hlc_before
            log.error("event=commit_failed error=%r", exc)
            err = Unavailable(f"storage error: {exc}")
            return [OpResult(error=err) for _ in ops]
        self._publish(batch)
        return results

    def _publish(self, batch: _Effects) -> None:
        if not batch.counts and not batch.definitions and batch.seq == self._seq:
            return
        for agent, (b, e, v) in batch.usage.items():
            u = self._usage.setdefault(agent, [0, 0, 0])
            u[0] += b
            u[1] += e
            u[2] += v
            if not any(u):
                del self._usage[agent]
        for ns, (s, lv, b) in batch.counts.items():
            c = self._counts.setdefault(ns, [0, 0, 0])
            c[0] += s
            c[1] += lv
            c[2] += b
        for part, (s, lv, b) in batch.parts.items():
            c = self._part_counts.setdefault(part, [0, 0, 0])
            c[0] += s
            c[1] += lv
            c[2] += b
        for ns, definition in batch.definitions.items():
            if definition is None:
                self._definitions.pop(ns, None)
            else:
                self._definitions[ns] = definition
        self._seq = batch.seq
        self.catalog = Catalog.of(
            self._definitions,
            self._counts,
            self._seq,
            partition_counts=self._part_counts,
            usage=self._usage,
        )

    def _apply_one(self, txn: lmdb.Transaction, op: Op, now_ms: int, batch: _Effects) -> OpResult:
        fx = _Effects(batch.seq)
        fx.definitions = _Layered(batch.definitions)  # type: ignore[assignment]
        hlc_before = self.hlc.last
        try:
            with self.env.begin(write=True, parent=txn) as child:
                result = self._dispatch(child, op, now_ms, fx)
        except lmdb.MapFullError:
            raise
        except Exception as exc:
            self.hlc.last = hlc_before
            return OpResult(error=_as_error(op, exc))
        batch.absorb(fx)
        return result

    def _apply_shared(
        self, txn: lmdb.Transaction, op: Op, now_ms: int, batch: _Effects
    ) -> OpResult:
        try:
            if type(op) is Merge:
                return self._merge(txn, op, now_ms, batch)
            return self._command(txn, op, now_ms, batch)
        except lmdb.MapFullError:
            raise
        except Exception as exc:
            raise _Failed from exc

    def _dispatch(self, txn: lmdb.Transaction, op: Op, now_ms: int, fx: _Effects) -> OpResult:
        if commands.is_command(op):
            return self._command(txn, op, now_ms, fx)
        if isinstance(op, Merge):
            return self._merge(txn, op, now_ms, fx)
        if isinstance(op, Sweep):
            return self._sweep(txn, op, now_ms, fx)
        if isinstance(op, Purge):
            return self._purge(txn, op, now_ms, fx)
        if isinstance(op, DropKeys):
            return self._drop_keys(txn, op, fx)
        if isinstance(op, SetMeta):
            fx.meta[L.node_meta_key(op.name)] = op.value
            return OpResult({"set": op.name})
        if isinstance(op, archived.ARCHIVE_OPS):
            return archived.dispatch(self, txn, op, now_ms, fx)
        raise InternalError(f"unknown operation {type(op).__name__}")

    # --- what the engine reads while writing ------------------------------------

    def namespace(self, ns: str, fx: _Effects | None = None) -> NamespaceDef:
        """A definition as this operation sees it: its batch's writes over the committed ones."""
        if fx is not None and ns in fx.definitions:
            found = fx.definitions[ns]
            if found is not None:
                return found
        return self.catalog.namespace(ns)

    def _current(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        members: Iterable[str] | None,
        now_ms: int,
        fx: _Effects,
        header: Loaded | None = None,
        header_read: bool = False,
    ) -> tuple[Loaded | None, list[Change]]:
        """The local entry, or None if absent; dead-and-collectable entries are dropped first.

        An entry archived here as stale is put back into the live store first, as it
        was: whatever comes next (a write, a peer's state) applies to the whole entry.

        `header` is the entry's record already loaded without members (`header_read`):
        absent, or holding no set, it is the whole entry and is not read again.
        """
        if header_read and (header is None or header.entry.orset is None):
            loaded: Loaded | None = header
        else:
            loaded = load(txn, self.db, ekey, members)
        restored: list[Change] = []
        if loaded is None:
            change = archived.materialize(self, txn, ns, key, ekey, now_ms, fx)
            if change is None:
                return None, []
            restored.append(change)
            loaded = load(txn, self.db, ekey, members)
            assert loaded is not None
        entry = loaded.entry
        cleared = ns != SYSTEM_NS and entry.ts <= self.namespace(ns, fx).cleared_at
        if cleared or entry.collectable(now_ms, self.config.grace_ms):
            kind = "purge" if cleared else "collect"
            return None, [*restored, self._drop(txn, ns, key, ekey, loaded, kind, fx)]
        return loaded, restored

    # --- client writes ----------------------------------------------------------

    def _command(self, txn: lmdb.Transaction, op: Any, now_ms: int, fx: _Effects) -> OpResult:
        ns, key = commands.target(op)
        if op.ns != AGENTS_NS or not isinstance(op, Put | Delete):
            # Registrations are the one reserved namespace written by commands (the
            # agent operations' own puts); clients cannot name it.
            check_ns_name(op.ns)
        if ns != SYSTEM_NS:
            L.check_key(key, self.config.max_key_bytes)
        ekey = L.entry_key(ns, key)
        header = load(txn, self.db, ekey, ())
        members = commands.members_needed(op, header.entry if header else None, now_ms)
        cur, changes = self._current(
            txn, ns, key, ekey, members, now_ms, fx, header, header_read=True
        )
        definition = self.namespace(op.ns, fx)
        ctx = CommandContext(
            self.node_id,
            definition,
            self.config,
            cleared_at=0 if ns == SYSTEM_NS else definition.cleared_at,
            agent=op.agent,
        )
        clock = ClockReading.draw(self.hlc, now_ms)
        outcome = commands.execute(op, cur.entry if cur else None, ctx, clock)
        if outcome.delta is None:
            return OpResult(outcome.result, changes=changes)
        self.hlc.last = max(self.hlc.last, clock.ts)
        before = cur.entry if cur else None
        new = (before or Entry()).join(outcome.delta)
        touched = ALL if outcome.touched is ALL else outcome.touched
        change = self._write(
            txn, ns, key, ekey, cur, new, touched, outcome.kind, "local", now_ms, fx,
            delta=outcome.delta,
        )  # fmt: skip
        change.before = before
        if ns == SYSTEM_NS:
            self._note_definition(key, new, fx)
        return OpResult(outcome.result, changes=[*changes, change])

    def _note_definition(self, name: str, entry: Entry | None, fx: _Effects) -> None:
        reg = entry.reg if entry is not None else None
        if reg is None or reg.deleted:
            fx.definitions[name] = None
        else:
            fx.definitions[name] = NamespaceDef.from_value(name, reg.value)

    # --- replication and housekeeping --------------------------------------------

    def _merge(self, txn: lmdb.Transaction, op: Merge, now_ms: int, fx: _Effects) -> OpResult:
        check_ns_name(op.ns, allow_system=True)
        L.check_key(op.key, self.config.max_key_bytes)
        cleared_at = 0 if op.ns == SYSTEM_NS else self.namespace(op.ns, fx).cleared_at
        verdict = replicated.admit(
            op.state,
            full=op.full,
            now_ms=now_ms,
            cleared_at=cleared_at,
            grace_ms=self.config.grace_ms,
            max_offset_ms=self.config.max_clock_offset_ms,
        )
        if verdict is not None:
            return OpResult({"applied": False}, note=verdict)
        self.hlc.update(op.state.ts, now_ms)
        ekey = L.entry_key(op.ns, op.key)
        names = replicated.members_named(op.state, full=op.full)
        cur, changes = self._current(txn, op.ns, op.key, ekey, names, now_ms, fx)
        before = cur.entry if cur else None
        new = (before or Entry()).join(op.state)
        if cur is not None and new == cur.entry:
            return OpResult({"applied": False}, changes=changes)
        touched = ALL if names is ALL else list(names)
        change = self._write(
            txn, op.ns, op.key, ekey, cur, new, touched, "merge", op.origin, now_ms, fx
        )
        change.before = before
        if op.ns == SYSTEM_NS:
            self._note_definition(op.key, new, fx)
        return OpResult({"applied": True}, changes=[*changes, change])

    def _sweep(self, txn: lmdb.Transaction, op: Sweep, now_ms: int, fx: _Effects) -> OpResult:
        changes: list[Change] = []
        done = 0
        due_db = self.db["due"]
        while done < op.limit:
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
            loaded, dropped = self._current(txn, ns, key, ekey, ALL, now_ms, fx)
            changes.extend(dropped)
            if loaded is None:
                continue
            # The due record is gone; _write files the next one from scratch.
            loaded.due = 0
            if (
                loaded.counted_live
                and not loaded.entry.visible(now_ms)
                and self.namespace(ns, fx).archive_expired
            ):
                archived.keep_expired(self, txn, ns, key, loaded.entry, now_ms)
            delta = loaded.entry.expire(self._strip_clock(now_ms))
            new = loaded.entry.join(delta) if delta is not None else loaded.entry
            change = self._write(
                txn, ns, key, ekey, loaded, new, ALL, "expire", "sweep", now_ms, fx
            )
            if delta is not None and (delta.counter is not None or delta.orset is not None):
                # A counter's or set's expiry is extended by concurrent writes, so
                # replicas can strip different things: gossip it like a delete.
                change.delta = delta
            if change.old_digest != change.new_digest or change.visible_before:
                changes.append(change)
            if self._next_due(new, now_ms) == now_ms:
                raise InternalError(f"entry {ns}/{key} stays due after its sweep")
        return OpResult({"processed": done}, changes=changes, more=done >= op.limit)

    def _purge(self, txn: lmdb.Transaction, op: Purge, now_ms: int, fx: _Effects) -> OpResult:
        cleared_at = self.namespace(op.ns, fx).cleared_at
        changes: list[Change] = []
        seen = 0
        bound = L.ns_prefix(op.ns)
        start = self._purge_cursor.get(op.ns, bound)
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
            loaded = load(txn, self.db, ekey, ALL)
            assert loaded is not None
            changes.append(self._drop(txn, op.ns, key, ekey, loaded, "purge", fx))
        more = seen >= op.limit
        if not more:
            changes.extend(archived.purge(self, txn, op.ns, cleared_at))
        if more and last is not None:
            self._purge_cursor[op.ns] = last + b"\x00"
        else:
            self._purge_cursor.pop(op.ns, None)
        return OpResult({"purged": len(changes)}, changes=changes, more=more)

    def _drop_keys(self, txn: lmdb.Transaction, op: DropKeys, fx: _Effects) -> OpResult:
        changes: list[Change] = []
        for key, digest in op.items:
            ekey = L.entry_key(op.ns, key)
            rec = txn.get(ekey, db=self.db["entries"])
            if rec is None:
                dropped = archived.drop_handed_over(self, txn, op.ns, key, digest)
                if dropped is not None:
                    changes.append(dropped)
                continue
            if L.unpack_record(rec).digest != digest:
                continue
            loaded = load(txn, self.db, ekey, ALL)
            assert loaded is not None
            changes.append(self._drop(txn, op.ns, key, ekey, loaded, "handoff", fx, "handoff"))
        return OpResult({"dropped": len(changes)}, changes=changes)

    # --- timing ------------------------------------------------------------------

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
        if entry.lasting_register():  # most entries: nothing is ever due
            return 0
        offset = self.config.max_clock_offset_ms
        due = entry.next_due(self._strip_clock(now_ms), self.config.grace_ms)
        due = 0 if due is None else due + offset
        hidden_at = entry.next_expiry(now_ms)
        if hidden_at is not None and (not due or hidden_at < due):
            due = hidden_at
        return due

    # --- writing records -----------------------------------------------------------

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
        fx: _Effects,
        delta: Entry | None = None,
    ) -> Change:
        """Write `new` over `old`; `delta`: the local write's delta, for gossip."""
        mdb = self.db["members"]
        mxor = old.mxor if old else L.ZERO_DIGEST
        nbytes = -(old.record_size if old else 0)
        had_members = member_bytes(txn, self.db, ekey) if old and old.entry.orset else 0
        mbytes = had_members
        if new.orset is not None or (old and old.members):
            new_elems = new.orset.elems if new.orset is not None else {}
            if touched is ALL:
                names: Iterable[str] = set(new_elems) | set(old.members if old else ())
            else:
                # Once each: a member named twice (`sadd s x x`) must not be stored and
                # XORed into the digest twice, which would cancel it out.
                names = dict.fromkeys(touched)
            for m in names:
                old_raw = old.members[m][1] if old and m in old.members else None
                dots = new_elems.get(m)
                new_raw = encode_dots(dots) if dots else None
                if old_raw == new_raw:
                    continue
                mk = L.member_key(ekey, m)
                if old_raw is not None:
                    mxor = L.xor16(mxor, member_hash(m, old_raw))
                    mbytes -= len(mk) + len(L.pack_member(m, old_raw))
                    txn.delete(mk, db=mdb)
                if new_raw is not None:
                    mxor = L.xor16(mxor, member_hash(m, new_raw))
                    value = L.pack_member(m, new_raw)
                    mbytes += len(mk) + len(value)
                    txn.put(mk, value, db=mdb)
            nbytes += mbytes - had_members
            if mbytes != had_members:
                set_member_bytes(txn, self.db, ekey, mbytes)
        header = encode_entry(header_of(new))
        digest = L.hash16(header)
        if mxor != L.ZERO_DIGEST:  # members' hashes, for a set
            digest = L.xor16(digest, mxor)
        due = self._next_due(new, now_ms)
        old_due = old.due if old else 0
        if old_due != due:
            if old_due:
                txn.delete(L.due_key(old_due, ekey), db=self.db["due"])
            if due:
                txn.put(L.due_key(due, ekey), b"", db=self.db["due"])
        visible_before = bool(old) and old.counted_live
        definition = None if ns == SYSTEM_NS else self.namespace(ns, fx)
        cleared_at = 0 if definition is None else definition.cleared_at
        visible_after = new.ts > cleared_at and new.visible(now_ms)
        record = L.pack_record(digest, mxor, due, visible_after, header, key)
        txn.put(ekey, record, db=self.db["entries"])
        nbytes += len(ekey) + len(record)
        if visible_before:
            fx.charge(old.entry.agent, -(old.record_size + had_members), -1, -vectors_of(old.entry))
        if visible_after:
            fx.charge(new.agent, len(ekey) + len(record) + mbytes, 1, vectors_of(new))
        leaf = leaf_of(key, self.leaf_bits)
        if old is None or old.digest != digest:
            txn.put(
                L.merkle_key(ns, leaf, key),
                L.merkle_value(key, digest),
                db=self.db["merkle"],
            )
        live = int(visible_after) - int(visible_before)
        self._count(fx, ns, key, 0 if old else 1, live, nbytes, definition)
        change = self._changed(
            txn,
            ns,
            key,
            kind,
            origin,
            old.digest if old else None,
            digest,
            visible_before,
            visible_after,
            fx,
        )
        change.entry = new
        change.size = len(ekey) + len(record)
        change.leaf = leaf
        if delta is not None:
            change.delta = delta
            if _encodes_alike(new, delta):
                change.payload = header
        return change

    def _drop(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        ekey: bytes,
        old: Loaded,
        kind: str,
        fx: _Effects,
        origin: str = "sweep",
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
        txn.delete(L.merkle_key(ns, leaf_of(key, self.leaf_bits), key), db=self.db["merkle"])
        definition = None if ns == SYSTEM_NS else self.namespace(ns, fx)
        self._count(fx, ns, key, -1, -int(old.counted_live), -nbytes, definition)
        had_members = member_bytes(txn, self.db, ekey) if old.entry.orset else 0
        if had_members:
            set_member_bytes(txn, self.db, ekey, 0)
        if old.counted_live:
            fx.charge(old.entry.agent, -(old.record_size + had_members), -1, -vectors_of(old.entry))
        if ns == SYSTEM_NS:
            fx.definitions[key] = None
        return self._changed(
            txn, ns, key, kind, origin, old.digest, None, old.counted_live, False, fx
        )

    def _count(
        self,
        fx: _Effects,
        ns: str,
        key: str,
        stored: int,
        live: int,
        nbytes: int,
        definition: NamespaceDef | None,
    ) -> None:
        """Count a change per namespace, and per partition in a sharded namespace
        (`definition`: the namespace's as this operation sees it; None for the system one)."""
        fx.count(ns, stored, live, nbytes)
        if definition is not None and definition.partitions:
            part = (ns, partition_of(key, definition.partitions))
            fx.count_partition(part, stored, live, nbytes)

    def _changed(
        self,
        txn: lmdb.Transaction,
        ns: str,
        key: str,
        kind: str,
        origin: str,
        old_digest: bytes | None,
        new_digest: bytes | None,
        visible_before: bool,
        visible_after: bool,
        fx: _Effects,
    ) -> Change:
        fx.seq += 1
        txn.put(L.seq_key(fx.seq), L.full_entry_key(ns, key), db=self.db["changes"])
        return Change(
            ns,
            key,
            kind,
            origin,
            old_digest,
            new_digest,
            visible_before,
            visible_after,
            seq=fx.seq,
        )


def _encodes_alike(new: Entry, delta: Entry) -> bool:
    """Whether `delta` encodes to the bytes of `new`: the join took each of its parts
    as they were (a register write over nothing else, the common put)."""
    return (
        new.reg is delta.reg
        and new.mv is delta.mv
        and new.counter is delta.counter
        and new.orset is None
        and delta.orset is None
        and new.ts == delta.ts
        and new.agent == delta.agent
    )


class _Failed(Exception):
    """An operation of a shared-transaction batch failed: the batch runs again, each
    operation in its own nested transaction."""


class _Layered(dict):
    """An operation's definitions over its batch's: reads fall through, writes stay here."""

    def __init__(self, below: dict[str, NamespaceDef | None]) -> None:
        super().__init__()
        self._below = below

    def __contains__(self, ns: object) -> bool:
        return super().__contains__(ns) or ns in self._below

    def __getitem__(self, ns: str) -> NamespaceDef | None:
        if super().__contains__(ns):
            return super().__getitem__(ns)
        return self._below[ns]


def _as_error(op: Op, exc: Exception) -> SwarmError:
    if isinstance(exc, SwarmError):
        return exc
    if isinstance(exc, ClockSkewError):
        return BadRequest(f"rejected: {exc}", code="clock_skew")
    if isinstance(exc, InvalidValue | DecodeError):
        return BadRequest(str(exc))
    log.error("event=op_failed op=%s", type(op).__name__, exc_info=exc)
    return InternalError(f"{type(op).__name__} failed: {exc!r}")
