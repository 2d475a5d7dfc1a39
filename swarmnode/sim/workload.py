"""Client workload: writes, reads and vector searches, with a full history.

Clients issue operations at random times against random nodes (each client
mostly its home node), through the node's service layer exactly as a client's
request arrives (`Service.call`: measure, validate, embed, execute), so the
simulator runs what users call: puts, gets, deletes, increments, set adds and
removes, vector puts and vsearches. Keys have one kind each (register,
counter, set, vector register), so every operation is valid and any error is
a finding. Every operation is recorded with its node, its invocation and
acknowledgement times and its result, plus what the oracles need to judge it
without trusting replication:

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

Some oracles run as each answer arrives, so a violation is reported at the
virtual time it happened rather than only at the end (`violations`, each
with its time): a read returns only values some put already sent had
written; an acknowledged register write is in its node's store when the
client hears of it (or something newer is); and a node's register for a key
never goes back to an older (timestamp, node), whatever crashes it lives
through, since what it acknowledged was committed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from swarmnode.crdt.causal import Dot
from swarmnode.crdt.entry import Entry
from swarmnode.errors import NotFound, Unavailable
from swarmnode.runtime.host import NodeHost
from swarmnode.sim.checks import check_vsearch
from swarmnode.sim.cluster import Cluster
from swarmnode.storage.ops import Change, OpResult

KINDS = ("put", "delete", "incr", "sadd", "srem", "sdel", "cdel", "get", "vput", "vsearch")
READS = frozenset({"get", "vsearch"})
VECTOR_DIM = 4


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
    # Namespace of the vector registers (defined with dim 4, cosine, on every node).
    vector_ns: str = "simvec"
    # Relative weights of put, delete, incr, sadd, srem, sdel (delete of a set
    # key), cdel (delete of a counter key: an observed reset), get, vput (a put
    # with a vector) and vsearch.
    mix: tuple[float, ...] = (4, 1, 3, 3, 2, 0.5, 0.5, 2, 1.5, 1)
    # Keys in the vector namespace.
    vectors: int = 6
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
    # vput: the vector written; vsearch: the query
    vector: tuple[float, ...] | None = None

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
            "vector": [f"v{i}" for i in range(config.vectors)],
        }
        self.vectors_by_value: dict[int, tuple[float, ...]] = {}
        """vput's value -> the vector written with it (values are unique)."""
        self.members = [f"m{i}" for i in range(config.members)]
        self._values = 0
        self._prepared = False
        self.violations: list[tuple[float, str]] = []
        """(virtual time, what) of every online oracle that failed, in order."""
        self._sent: dict[str, set[Any]] = {}
        """Register key -> the values puts sent so far wrote (a read may return only these)."""
        self._newest: dict[tuple[int, str], tuple[int, str]] = {}
        """(node, register key) -> the newest (ts, node) that node's store held when looked at."""

    def prepare(self) -> None:
        """Define the vector namespace on every node (the same definition: idempotent).

        Called by the first `schedule` or `issue`: a definition written now commits before
        any operation drawn later reaches the node."""
        if self._prepared:
            return
        self._prepared = True
        args = {"ns": self.config.vector_ns, "dim": VECTOR_DIM, "metric": "cosine"}
        for sn in self.cluster.nodes:
            if sn.up:
                self.cluster.call(sn.index, lambda host, sn=sn: self._call(sn, "ns_init", args))

    def _call(self, sn: Any, op: str, args: dict[str, Any], ctx: Any = None) -> Any:
        assert sn.service is not None
        return self.cluster.loop.create_task(sn.service.call(op, args, ctx or _Request()))

    def schedule(self, start: float, end: float) -> int:
        """Draw the operations of [start, end) (a Poisson process); returns how many."""
        self.prepare()
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
        if kind in ("put", "delete", "get"):
            key = rng.choice(self.keys["register"])
        elif kind in ("incr", "cdel"):
            key = rng.choice(self.keys["counter"])
        elif kind in ("vput", "vsearch"):
            key = rng.choice(self.keys["vector"]) if kind == "vput" else "*"
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
        vector = None
        if kind in ("vput", "vsearch"):
            vector = tuple(round(rng.uniform(-1, 1), 3) for _ in range(VECTOR_DIM))
            if kind == "vput":
                self._values += 1
                arg = self._values
                self.vectors_by_value[arg] = vector
            else:
                arg = 3
        record = self._record(client, node, kind, key, arg, t)
        record.ttl = ttl
        record.vector = vector
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
        self.prepare()
        record = self._record(-1, node, kind, key, arg, self.cluster.now)
        self._issue(record)
        return record

    def _issue(self, record: OpRecord) -> None:
        sn = self.cluster.nodes[record.node]
        if not sn.up:
            record.status = "unavailable"
            return
        if record.kind == "put":
            self._sent.setdefault(record.key, set()).add(record.arg)
        self.cluster.call(record.node, lambda host: self._run(host, record))

    def _run(self, host: NodeHost, record: OpRecord) -> None:
        sn = self.cluster.nodes[record.node]
        observed: list[OpResult] = []
        op, args = self._request(record)
        task = self._call(sn, op, args, _Request(observed.append))
        task.add_done_callback(lambda t: self._done(record, t, observed))

    def _done(self, record: OpRecord, task: Any, observed: list[OpResult]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, Unavailable) and not self.cluster.nodes[record.node].up:
            return  # the node went down with it: never acknowledged, outcome unknown
        record.acked = self.cluster.now
        if exc is not None:
            if record.kind == "get" and isinstance(exc, NotFound):
                record.status, record.result = "ok", None
                return
            record.status = "error"
            code = getattr(exc, "code", type(exc).__name__)
            record.error = f"{code}: {exc}"
            return
        reply = task.result()
        record.status = "ok"
        if record.kind in READS:
            record.result = _read_result(record.kind, reply)
            self.check_read(record)
            return
        record.result = {k: v for k, v in reply.items() if k not in ("ns", "key")}
        written = _own_change(observed[-1].changes) if observed else None
        before = written.before if written is not None else None
        after = written.entry if written is not None else None
        self._observe(record, before, after)
        if record.kind in ("put", "delete"):
            self._check_register_now(record)

    def _violation(self, what: str) -> None:
        self.violations.append((self.cluster.now, what))

    def check_read(self, record: OpRecord) -> None:
        """A read returns only what some put already sent wrote (no phantom values)."""
        if record.kind == "get":
            if record.result is not None and record.result not in self._sent.get(record.key, ()):
                self._violation(
                    f"op {record.id} get {record.key} on n{record.node}: {record.result!r} "
                    "was never put"
                )
            return
        for problem in check_vsearch(record, self.vectors_by_value):
            self._violation(problem)

    def _check_register_now(self, record: OpRecord) -> None:
        """The node holds the write it just acknowledged, or a newer one, and never an older
        register than it held before."""
        sn = self.cluster.nodes[record.node]
        if sn.store is None:
            return
        entry = sn.store.get(self.config.ns, record.key)
        reg = entry.reg if entry is not None else None
        if reg is None:
            if record.order is None:
                return  # a delete of a key that was not there wrote nothing
            self._violation(
                f"op {record.id} {record.kind} {record.key}: acknowledged by "
                f"n{record.node}, which holds no register for it"
            )
            return
        held = (reg.ts, reg.node)
        if record.order is not None and held < record.order:
            self._violation(
                f"op {record.id} {record.kind} {record.key}: acknowledged by "
                f"n{record.node} as {record.order}, which holds older {held}"
            )
        seen = self._newest.get((record.node, record.key))
        if seen is not None and held < seen:
            self._violation(
                f"n{record.node} {record.key}: register went back from {seen} to {held}"
            )
        self._newest[(record.node, record.key)] = max(held, seen or held)

    def _request(self, record: OpRecord) -> tuple[str, dict[str, Any]]:
        """The operation and arguments a client sends for this record."""
        ns, key, arg = self.config.ns, record.key, record.arg
        kind = record.kind
        if kind == "put":
            return "put", {"ns": ns, "key": key, "value": arg, "ttl": record.ttl}
        if kind in ("delete", "sdel", "cdel"):
            return "delete", {"ns": ns, "key": key}
        if kind == "incr":
            return "incr", {"ns": ns, "key": key, "by": arg}
        if kind in ("sadd", "srem"):
            return kind, {"ns": ns, "key": key, "members": [arg]}
        if kind == "get":
            return "get", {"ns": ns, "key": key}
        vns = self.config.vector_ns
        if kind == "vput":
            return "put", {"ns": vns, "key": key, "value": arg, "vector": list(record.vector)}
        return "vsearch", {"ns": vns, "vector": list(record.vector), "k": arg}

    def _observe(self, record: OpRecord, before: Entry | None, after: Entry | None) -> None:
        kind = record.kind
        if kind in ("put", "delete", "vput"):
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


class _Request:
    """A request's context, as the simulator's clients send it: the committed result of a
    write is handed to `observe` (the service layer's hook) before the reply."""

    def __init__(self, observe: Any = None) -> None:
        self.observe = observe


def _read_result(kind: str, reply: dict[str, Any]) -> Any:
    if kind == "get":
        return reply.get("value")
    return [(item["key"], item["value"], round(item["score"], 6)) for item in reply["items"]]
