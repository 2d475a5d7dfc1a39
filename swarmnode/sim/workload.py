"""Client workload: puts, deletes, increments and set adds/removes, with a full history.

Clients issue operations at random times against random nodes (each client
mostly its home node). Keys have one kind each (register, counter or set), so
every operation is valid and any error is a finding. Every operation is
recorded with its node, its invocation and acknowledgement times and its
result, plus what the oracles need to judge it without trusting replication:

- a register write keeps the (timestamp, node) it was stored under;
- a set add keeps the dot it created and the dots of the member it
  superseded; a set remove, or a delete of a set key, keeps the dots it
  observed (and so removed) at its node. Add-wins semantics is then exact: a
  dot survives iff no acknowledged operation observed it.
- an increment keeps the counter slot (actor) it counted under; a delete of a
  counter keeps the per-slot totals it observed, which it resets. A counter is
  then the acknowledged increments of each slot above the highest reset of
  that slot: increments a reset had not seen survive it.

These observations come from the write's own committed change: the entry
just before and just after the operation, as the storage engine saw them
inside the operation's transaction, so other writes that share its group
commit cannot blur them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from swarmnode.crdt.causal import Dot
from swarmnode.crdt.entry import Entry
from swarmnode.runtime.host import NodeHost
from swarmnode.sim.cluster import Cluster
from swarmnode.storage.ops import Change, Delete, Incr, Op, OpResult, Put, SAdd, SRem

KINDS = ("put", "delete", "incr", "sadd", "srem", "sdel", "cdel")


@dataclass
class WorkloadConfig:
    """The shape of the client load."""

    # Namespace written (no TTL: expiry is not what these runs judge).
    ns: str = "sim"
    # Operations per virtual second, over the whole cluster.
    rate: float = 20.0
    # Independent clients; each has a home node it uses most of the time.
    clients: int = 8
    # Chance a client sends an operation to its home node rather than another one.
    stickiness: float = 0.8
    # Keys of each kind. Few keys means many concurrent writes per key.
    registers: int = 6
    counters: int = 3
    sets: int = 3
    # Distinct members per set.
    members: int = 5
    # Relative weights of put, delete, incr, sadd, srem, sdel (delete of a set
    # key) and cdel (delete of a counter key: an observed reset).
    mix: tuple[float, ...] = (4, 1, 3, 3, 2, 0.5, 0.5)
    # Share of puts that carry a TTL, and the range it is drawn from (seconds).
    # Expiry, sweeping and tombstone collection are then part of what is judged.
    ttl_share: float = 0.0
    ttl: tuple[float, float] = (0.5, 8.0)


@dataclass
class OpRecord:
    id: int
    client: int
    node: int
    kind: str
    key: str
    arg: Any
    invoked: float
    acked: float | None = None
    ttl: float | None = None
    status: str = "pending"  # pending | ok | error | unavailable
    error: str | None = None
    result: Any = None
    # register writes: the (ts, node) the write was stored under, whether it
    # deleted, and when it expires (wall-clock ms, None: never)
    order: tuple[int, str] | None = None
    deleted: bool = False
    expires_at: int | None = None
    # set operations: the dot an add created; the dots each touched member had
    # at the node before the operation (an add supersedes them, a remove or
    # delete removes them)
    dot: Dot | None = None
    observed: dict[str, frozenset[Dot]] = field(default_factory=dict)
    # counters: the slot an increment counted under; a reset's observed totals
    # per slot, (increments, decrements)
    actor: str | None = None
    floors: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        """One canonical line per operation, for digests and failure reports."""
        acked = "-" if self.acked is None else f"{self.acked:.6f}"
        obs = sorted((m, sorted(d)) for m, d in self.observed.items())
        return (
            f"{self.id} c{self.client} n{self.node} {self.kind} {self.key} {self.arg!r} "
            f"@{self.invoked:.6f}/{acked} {self.status} {self.error or ''} {self.result!r} "
            f"{self.order} {self.deleted} {self.expires_at} {self.dot} {obs} "
            f"{self.actor} {sorted(self.floors.items())}"
        )


class History:
    def __init__(self) -> None:
        self.ops: list[OpRecord] = []

    def lines(self) -> list[str]:
        return [op.line() for op in self.ops]

    def acked(self) -> list[OpRecord]:
        return [op for op in self.ops if op.ok]


class Workload:
    """Schedules client operations on a cluster and records them."""

    def __init__(self, cluster: Cluster, config: WorkloadConfig, rng: random.Random) -> None:
        self.cluster = cluster
        self.config = config
        self.rng = rng
        self.history = History()
        n = len(cluster.nodes)
        self.homes = [rng.randrange(n) for _ in range(config.clients)]
        self.keys = {
            "register": [f"r{i}" for i in range(config.registers)],
            "counter": [f"c{i}" for i in range(config.counters)],
            "set": [f"s{i}" for i in range(config.sets)],
        }
        self.members = [f"m{i}" for i in range(config.members)]
        self._values = 0

    def schedule(self, start: float, end: float) -> int:
        """Draw the operations of [start, end) (a Poisson process); returns how many."""
        cfg = self.config
        t = start
        count = 0
        while True:
            t += self.rng.expovariate(cfg.rate)
            if t >= end:
                return count
            self.cluster.loop.call_at(t, self._issue, self._draw(t))
            count += 1

    def _draw(self, t: float) -> OpRecord:
        cfg, rng = self.config, self.rng
        client = rng.randrange(cfg.clients)
        node = self.homes[client]
        if rng.random() >= cfg.stickiness:
            node = rng.randrange(len(self.cluster.nodes))
        kind = rng.choices(KINDS, weights=cfg.mix)[0]
        if kind in ("put", "delete"):
            key = rng.choice(self.keys["register"])
        elif kind in ("incr", "cdel"):
            key = rng.choice(self.keys["counter"])
        else:
            key = rng.choice(self.keys["set"])
        arg: Any = None
        ttl = None
        if kind == "put":
            self._values += 1
            arg = self._values
            if cfg.ttl_share and rng.random() < cfg.ttl_share:
                ttl = round(rng.uniform(*cfg.ttl), 3)
        elif kind == "incr":
            arg = rng.choice((1, 1, 2, 5, -1, -3))
        elif kind in ("sadd", "srem"):
            arg = rng.choice(self.members)
        record = self._record(client, node, kind, key, arg, t)
        record.ttl = ttl
        return record

    def _record(self, client: int, node: int, kind: str, key: str, arg: Any, t: float) -> OpRecord:
        record = OpRecord(len(self.history.ops), client, node, kind, key, arg, t)
        self.history.ops.append(record)
        return record

    def issue(self, node: int, kind: str, key: str, arg: Any = None) -> OpRecord:
        """Send one operation to a node now, outside the random schedule (scripted scenarios).

        Its record fills in when the node acknowledges it, after its commit (an event
        of its own at the same instant, or later if the node is slow).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        record = self._record(-1, node, kind, key, arg, self.cluster.now)
        self._issue(record)
        return record

    def _issue(self, record: OpRecord) -> None:
        sn = self.cluster.nodes[record.node]
        if not sn.up:
            record.status = "unavailable"
            return
        self.cluster.call(record.node, lambda host: self._run(host, record))

    def _op(self, record: OpRecord) -> Op:
        ns, key, arg = self.config.ns, record.key, record.arg
        if record.kind == "put":
            return Put(ns, key, arg, ttl=record.ttl)
        if record.kind in ("delete", "sdel", "cdel"):
            return Delete(ns, key)
        if record.kind == "incr":
            return Incr(ns, key, arg)
        if record.kind == "sadd":
            return SAdd(ns, key, [arg])
        return SRem(ns, key, [arg])

    def _run(self, host: NodeHost, record: OpRecord) -> None:
        def done(fut: object) -> None:
            if fut.cancelled() or fut.exception() is not None:  # type: ignore[attr-defined]
                return  # the node went down with the write: never acknowledged
            result: OpResult = fut.result()  # type: ignore[attr-defined]
            record.acked = self.cluster.now
            if result.error is not None:
                record.status = "error"
                record.error = f"{result.error.code}: {result.error.message}"
                return
            record.status = "ok"
            record.result = result.value
            written = _own_change(result.changes)
            before = written.before if written is not None else None
            after = written.entry if written is not None else None
            self._observe(record, before, after)

        host.submit(self._op(record)).add_done_callback(done)

    def _observe(self, record: OpRecord, before: Entry | None, after: Entry | None) -> None:
        kind = record.kind
        if kind in ("put", "delete"):
            wrote = kind == "put" or bool(record.result and record.result.get("deleted"))
            if wrote:
                assert after is not None and after.reg is not None
                record.order = (after.reg.ts, after.reg.node)
                record.deleted = after.reg.deleted
                record.expires_at = after.reg.expires_at
            return
        if kind in ("incr", "cdel"):
            self._observe_counter(record, before, after)
            return
        old = before.orset.elems if before is not None and before.orset is not None else {}
        if kind == "sadd":
            assert after is not None and after.orset is not None
            new = after.orset.elems[record.arg] - old.get(record.arg, frozenset())
            assert len(new) == 1, f"an add made {len(new)} dots"
            record.dot = next(iter(new))
            record.observed = {record.arg: frozenset(old.get(record.arg, ()))}
        elif kind == "srem":
            if record.result and record.result.get("removed"):
                record.observed = {record.arg: frozenset(old.get(record.arg, ()))}
        elif kind == "sdel" and record.result and record.result.get("deleted"):
            record.observed = {m: frozenset(d) for m, d in old.items() if d}

    @staticmethod
    def _observe_counter(record: OpRecord, before: Entry | None, after: Entry | None) -> None:
        old = before.counter if before is not None else None
        if record.kind == "cdel":
            if old is not None and record.result and record.result.get("deleted"):
                slots = set(old.p) | set(old.n)
                record.floors = {a: (old.p.get(a, 0), old.n.get(a, 0)) for a in slots}
            return
        assert after is not None and after.counter is not None
        new = after.counter
        side_old = (old.p if record.arg >= 0 else old.n) if old is not None else {}
        side_new = new.p if record.arg >= 0 else new.n
        changed = [a for a, v in side_new.items() if v != side_old.get(a)]
        assert len(changed) == 1, f"an increment changed {len(changed)} counter slots"
        record.actor = changed[0]


def _own_change(changes: list[Change]) -> Change | None:
    """The change a client write made itself (a collection of the old entry may precede it)."""
    for change in reversed(changes):
        if change.origin == "local":
            return change
    return None
