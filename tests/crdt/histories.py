"""Replicas running random histories of entry mutations, beside a model of what they must read.

The model knows nothing about dots, vectors or floors. It records events as
the specification states them: a write creates an atom (an MV version, a set
add of one member, a counter increment, an LWW write); a write, remove or
delete kills exactly the atoms its issuer could see at that moment; a replica
reads what it knows minus what it knows to be killed. Counters add one rule:
a counter delta carries cumulative totals, so learning a node's n-th
increment teaches all earlier ones (and a reset teaches what it floored).

Delivery is arbitrary: any replica may receive any earlier delta (again, or
before its causal predecessors) or another replica's full state at any step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack
from hypothesis import strategies as st

from swarmnode.crdt import (
    COUNTER,
    REGISTER,
    SET,
    Entry,
    HybridLogicalClock,
    ORSet,
    Version,
    wall_ms,
)
from swarmnode.crdt.counter import join_expiry
from swarmnode.crdt.dotkernel import join_dot_set

from .strategies import MEMBERS, NODES, members, timestamps

LWW_VALUES = st.sampled_from([1, 1.0, True, "v", None, {"k": 1}, [1]])


@dataclass(frozen=True, eq=False)
class Atom:
    """One write's effect; identity is the atom (two writes of equal payload stay two atoms)."""

    id: int
    kind: str  # "lww", "mv", "add", "inc"
    node: str
    member: str = ""
    amount: int = 0
    lww_key: tuple[int, str, bytes] = (0, "", b"")
    lww_read: tuple[bool, Any] = (False, None)


@dataclass(frozen=True)
class Event:
    op: str
    delta: Entry
    atoms: frozenset[Atom]
    kills: frozenset[int]
    implies: frozenset[Atom]


@dataclass
class Knowledge:
    atoms: set[Atom] = field(default_factory=set)
    kills: set[int] = field(default_factory=set)

    def learn(self, event: Event) -> None:
        self.atoms |= event.atoms | event.implies
        self.kills |= event.kills

    def merge(self, other: Knowledge) -> None:
        self.atoms |= other.atoms
        self.kills |= other.kills

    def live(self, kind: str) -> list[Atom]:
        return [a for a in self.atoms if a.kind == kind and a.id not in self.kills]

    # --- what a replica with this knowledge must read ---

    def lww(self) -> tuple[bool, Any] | None:
        writes = [a for a in self.atoms if a.kind == "lww"]
        return max(writes, key=lambda a: a.lww_key).lww_read if writes else None

    def siblings(self) -> list[int]:
        return sorted(a.id for a in self.live("mv"))

    def counter(self) -> int:
        return sum(a.amount for a in self.live("inc"))

    def members(self) -> list[str]:
        return sorted({a.member for a in self.live("add")})


def lww_key(ts: int, node: str, deleted: bool, value: Any) -> tuple[int, str, bytes]:
    """The documented LWW order: (timestamp, node id, bytes of the payload)."""
    return (ts, node, msgpack.packb([deleted, value, None, None, None]))


def reads(entry: Entry) -> dict[str, Any]:
    reg = None if entry.reg is None else (entry.reg.deleted, entry.reg.value)
    return {
        "lww": reg,
        "mv": sorted(v.value for _, v in entry.mv.siblings()) if entry.mv else [],
        "counter": entry.counter.value() if entry.counter else 0,
        "set": entry.orset.members() if entry.orset else [],
    }


def expected_reads(k: Knowledge) -> dict[str, Any]:
    return {"lww": k.lww(), "mv": k.siblings(), "counter": k.counter(), "set": k.members()}


def join_named_members(state: ORSet | None, delta: ORSet) -> ORSet:
    """Apply a set delta the way the store does: touching only the members it names."""
    base = state or ORSet()
    elems = dict(base.elems)
    for member, dots in delta.elems.items():
        joined = join_dot_set(base.elems.get(member, frozenset()), base.cc, dots, delta.cc)
        if joined:
            elems[member] = frozenset(joined)
        else:
            elems.pop(member, None)
    ts, at = join_expiry(base.expiry, delta.expiry)
    return ORSet(elems, base.cc.join(delta.cc), at, ts)


class Replica:
    def __init__(self, node: str) -> None:
        self.node = node
        self.state = Entry()
        self.known = Knowledge()

    def apply(self, event: Event) -> None:
        if event.delta.orset is not None:
            # The store's shortcut must agree with the full join for every delta.
            named = join_named_members(self.state.orset, event.delta.orset)
        self.state = self.state.join(event.delta)
        if event.delta.orset is not None:
            assert named == self.state.orset, "a set delta touched a member it does not name"
        self.known.learn(event)

    def absorb(self, other: Replica) -> None:
        self.state = self.state.join(other.state)
        self.known.merge(other.known)


class Cluster:
    """Three replicas (one per node id) and every delta they ever produced."""

    def __init__(self) -> None:
        self.replicas = [Replica(node) for node in NODES]
        self.events: list[Event] = []
        self._ids = iter(range(1, 1 << 30))

    def _issue(
        self,
        r: Replica,
        op: str,
        delta: Entry,
        atoms: Iterable[Atom] = (),
        kills: Iterable[int] = (),
        implies: Iterable[Atom] = (),
    ) -> None:
        event = Event(op, delta, frozenset(atoms), frozenset(kills), frozenset(implies))
        self.events.append(event)
        r.apply(event)

    def run(self, op: tuple[Any, ...]) -> None:
        name, i, *args = op
        r = self.replicas[i]
        getattr(self, name)(r, *args)

    # --- mutations ---

    def put_lww(self, r: Replica, ts: int, value: Any) -> None:
        delta = r.state.put_lww(ts, r.node, value)
        atom = Atom(
            next(self._ids),
            "lww",
            r.node,
            lww_key=lww_key(ts, r.node, False, delta.reg.value),
            lww_read=(False, delta.reg.value),
        )
        self._issue(r, "put_lww", delta, [atom])

    def put_mv(self, r: Replica, ts: int) -> None:
        atom = Atom(next(self._ids), "mv", r.node)
        delta = r.state.put_mv(ts, r.node, Version(atom.id, ts))
        self._issue(r, "put_mv", delta, [atom], [a.id for a in r.known.live("mv")])

    def incr(self, r: Replica, ts: int, by: int) -> None:
        delta = r.state.incr(ts, r.node, by, None, now_ms=0)
        same_sign = [
            a
            for a in r.known.atoms
            if a.kind == "inc" and a.node == r.node and (a.amount < 0) == (by < 0)
        ]
        atom = Atom(next(self._ids), "inc", r.node, amount=by)
        self._issue(r, "incr", delta, [atom], implies=same_sign)

    def sadd(self, r: Replica, ts: int, added: list[str]) -> None:
        delta = r.state.sadd(ts, r.node, added, None, now_ms=0)
        atoms = [Atom(next(self._ids), "add", r.node, member=m) for m in dict.fromkeys(added)]
        superseded = [a.id for a in r.known.live("add") if a.member in added]
        self._issue(r, "sadd", delta, atoms, superseded)

    def srem(self, r: Replica, ts: int, removed: list[str]) -> None:
        delta = r.state.srem(ts, removed)
        self._issue(
            r, "srem", delta, kills=[a.id for a in r.known.live("add") if a.member in removed]
        )

    def delete(self, r: Replica, ts: int) -> None:
        delta = r.state.delete(ts, r.node)
        atoms = []
        if any(a.kind == "lww" for a in r.known.atoms):
            atoms.append(
                Atom(
                    next(self._ids),
                    "lww",
                    r.node,
                    lww_key=lww_key(ts, r.node, True, None),
                    lww_read=(True, None),
                )
            )
        counted = [a for a in r.known.atoms if a.kind == "inc"]
        kills = [a.id for a in r.known.live("mv") + r.known.live("add") + counted]
        self._issue(r, "delete", delta, atoms, kills, implies=counted)

    # --- delivery ---

    def full(self, r: Replica, source: int) -> None:
        r.absorb(self.replicas[source])

    def delta(self, r: Replica, pick: int) -> None:
        if self.events:
            r.apply(self.events[pick % len(self.events)])

    def joined(self) -> Entry:
        out = Entry()
        for r in self.replicas:
            out = out.join(r.state)
        return out

    def everything_known(self) -> Knowledge:
        k = Knowledge()
        for r in self.replicas:
            k.merge(r.known)
        return k


replica_ix = st.integers(0, len(NODES) - 1)
member_lists = st.lists(members, min_size=1, max_size=len(MEMBERS))

OPS = {
    "put_lww": st.tuples(st.just("put_lww"), replica_ix, timestamps, LWW_VALUES),
    "put_mv": st.tuples(st.just("put_mv"), replica_ix, timestamps),
    "incr": st.tuples(st.just("incr"), replica_ix, timestamps, st.integers(-2, 3)),
    "sadd": st.tuples(st.just("sadd"), replica_ix, timestamps, member_lists),
    "srem": st.tuples(st.just("srem"), replica_ix, timestamps, member_lists),
    "delete": st.tuples(st.just("delete"), replica_ix, timestamps),
    "full": st.tuples(st.just("full"), replica_ix, replica_ix),
    "delta": st.tuples(st.just("delta"), replica_ix, st.integers(0, 63)),
}

KIND_OPS = {
    "lww": ["put_lww", "delete"],
    "mv": ["put_mv", "delete"],
    "counter": ["incr", "delete"],
    "set": ["sadd", "srem", "delete"],
    "mixed": ["put_lww", "put_mv", "incr", "sadd", "srem", "delete"],
}


def histories(kind: str, max_ops: int = 40) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Op lists for one kind; delivery ops weigh as much as mutations."""
    mutations = st.one_of([OPS[name] for name in KIND_OPS[kind]])
    delivery = st.one_of(OPS["full"], OPS["delta"])
    return st.lists(st.one_of(mutations, delivery), min_size=10, max_size=max_ops)


class ExpiringCluster:
    """Three replicas writing with TTLs, each on its own clock, expiring at its own moments.

    No read model here: what these histories check is that expiry never
    changes what a replica reads and that replicas converge however far apart
    their clocks ran when they expired things.
    """

    def __init__(self) -> None:
        self.replicas = [Replica(node) for node in NODES]
        self.clocks = [HybridLogicalClock() for _ in NODES]
        self.now = [10, 10, 10]
        self.gossiped: list[Event] = []
        self.local: list[Event] = []
        self._ids = iter(range(1, 1 << 30))

    def run(self, op: tuple[Any, ...]) -> None:
        name, i, *args = op
        getattr(self, name)(i, *args)

    def _write(self, i: int, make: Any, ttl: int | None) -> None:
        r = self.replicas[i]
        ts = self.clocks[i].now(self.now[i])
        expires_at = None if ttl is None else wall_ms(ts) + ttl
        event = Event("write", make(r, ts, expires_at), frozenset(), frozenset(), frozenset())
        self.gossiped.append(event)
        r.apply(event)

    def tick(self, i: int, dt: int) -> None:
        self.now[i] += dt

    def put_lww(self, i: int, ttl: int | None, value: Any) -> None:
        self._write(i, lambda r, ts, exp: r.state.put_lww(ts, r.node, value, expires_at=exp), ttl)

    def put_mv(self, i: int, ttl: int | None) -> None:
        vid = next(self._ids)
        self._write(
            i, lambda r, ts, exp: r.state.put_mv(ts, r.node, Version(vid, ts, expires_at=exp)), ttl
        )

    def incr(self, i: int, ttl: int | None, by: int) -> None:
        now = self.now[i]
        self._write(i, lambda r, ts, exp: r.state.incr(ts, r.node, by, exp, now), ttl)

    def sadd(self, i: int, ttl: int | None, added: list[str]) -> None:
        now = self.now[i]
        self._write(i, lambda r, ts, exp: r.state.sadd(ts, r.node, added, exp, now), ttl)

    def srem(self, i: int, removed: list[str]) -> None:
        self._write(i, lambda r, ts, exp: r.state.srem(ts, removed), None)

    def delete(self, i: int) -> None:
        self._write(i, lambda r, ts, exp: r.state.delete(ts, r.node), None)

    def expire(self, i: int) -> None:
        r, now = self.replicas[i], self.now[i]
        delta = r.state.expire(now)
        if delta is not None:
            before = visible_reads(r.state, now)
            event = Event("expire", delta, frozenset(), frozenset(), frozenset())
            self.local.append(event)
            r.apply(event)
            assert visible_reads(r.state, now) == before, "expiry changed what is visible"
            assert r.state.expire(now) is None, "expire is not idempotent"

    def full(self, i: int, source: int) -> None:
        self.replicas[i].absorb(self.replicas[source])

    def delta(self, i: int, pick: int) -> None:
        if self.gossiped:
            self.replicas[i].apply(self.gossiped[pick % len(self.gossiped)])


def visible_reads(entry: Entry, now_ms: int) -> dict[str, Any]:
    """What a client sees at `now_ms`: only live kinds, only unexpired versions."""
    kinds = entry.live_kinds(now_ms)
    out: dict[str, Any] = {"kinds": kinds}
    if REGISTER in kinds:
        out["reg"] = entry.reg.value if entry.reg and entry.reg.visible(now_ms) else None
        out["mv"] = [v.value for _, v in entry.mv.siblings(now_ms)] if entry.mv else []
    if COUNTER in kinds:
        out["counter"] = entry.counter.value()
    if SET in kinds:
        out["set"] = entry.orset.members()
    return out


ttls = st.sampled_from([1, 2, 5, None])
EXPIRY_OPS = {
    "put_lww": st.tuples(st.just("put_lww"), replica_ix, ttls, LWW_VALUES),
    "put_mv": st.tuples(st.just("put_mv"), replica_ix, ttls),
    "incr": st.tuples(st.just("incr"), replica_ix, ttls, st.integers(-2, 3)),
    "sadd": st.tuples(st.just("sadd"), replica_ix, ttls, member_lists),
    "srem": st.tuples(st.just("srem"), replica_ix, member_lists),
    "delete": st.tuples(st.just("delete"), replica_ix),
}


def expiring_histories(kind: str) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Op lists for one kind, with clock ticks and expiry passes mixed in."""
    mutations = st.one_of([EXPIRY_OPS[name] for name in KIND_OPS[kind]])
    timing = st.one_of(
        st.tuples(st.just("tick"), replica_ix, st.integers(0, 6)),
        st.tuples(st.just("expire"), replica_ix),
    )
    delivery = st.one_of(OPS["full"], OPS["delta"])
    return st.lists(st.one_of(mutations, timing, delivery), min_size=10, max_size=40)
