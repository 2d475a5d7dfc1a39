"""One stored entry: the CRDT state behind a (namespace, key).

An entry is the product of the four types (LWW register, MV register,
counter, set), each optional, joined field by field. Only one kind is normally
present: the node refuses an operation of another kind on a live key
(`wrong_type`). Writes of different kinds that were concurrent on different
replicas both survive the join instead of one silently erasing the other;
`get` then shows the register and the other kinds stay readable by their own
operations.

`ts` is a max-register over the timestamps of every write the entry has seen.
It dates the entry's death for tombstone collection (see `dead_since`).
`agent` names the agent that made the entry's latest write (None: a write
made without an agent identity): the pair (ts, agent) is a max-register too,
so every replica names the same agent. It is what audit shows and whom a
quota charges for the entry.

Deletes and expiry leave tombstones (the causal context or timestamps, no
values). A tombstone is kept `grace` milliseconds after the entry died and
then collected; once collectable it counts as absent on every replica, in both
directions of a join, so a fresh write after collection is never mistaken for
something the old tombstone removed. The limit: a replica cut off for longer
than the grace period can bring back what was deleted while it was away.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from swarmnode.crdt.counter import PNCounter
from swarmnode.crdt.hlc import wall_ms
from swarmnode.crdt.lww import LWWRegister
from swarmnode.crdt.mvreg import MVRegister, Version
from swarmnode.crdt.orset import ORSet
from swarmnode.crdt.values import canonical, canonical_meta

REGISTER, COUNTER, SET = "register", "counter", "set"


def _join_opt(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a.join(b)


def _join_sets(a: ORSet | None, b: ORSet | None) -> ORSet | None:
    # A remove delta names members it leaves without dots; joined into nothing
    # it must not carry those names into the state, whose bytes would then
    # differ from a replica that joined the same delta into a set it held.
    if a is not None and b is not None:
        return a.join(b)
    s = a if a is not None else b
    if s is None or all(s.elems.values()):
        return s
    return ORSet({m: d for m, d in s.elems.items() if d}, s.cc, s.expires_at, s.expiry_ts)


def _join_agent(a: Entry, b: Entry) -> str | None:
    """The agent of the later of two entries' latest writes: max of (ts, agent), None lowest."""
    if a.ts != b.ts:
        return a.agent if a.ts > b.ts else b.agent
    if a.agent is None or b.agent is None:
        return a.agent if b.agent is None else b.agent
    return max(a.agent, b.agent)


class Entry:
    __slots__ = ("agent", "counter", "mv", "orset", "reg", "ts")

    def __init__(
        self,
        ts: int = 0,
        *,
        reg: LWWRegister | None = None,
        mv: MVRegister | None = None,
        counter: PNCounter | None = None,
        orset: ORSet | None = None,
        agent: str | None = None,
    ) -> None:
        self.ts = ts
        self.reg = reg
        self.mv = mv
        self.counter = counter
        self.orset = orset
        self.agent = agent

    def join(self, other: Entry) -> Entry:
        return Entry(
            max(self.ts, other.ts),
            reg=_join_opt(self.reg, other.reg),
            mv=_join_opt(self.mv, other.mv),
            counter=_join_opt(self.counter, other.counter),
            orset=_join_sets(self.orset, other.orset),
            agent=_join_agent(self, other),
        )

    def by(self, agent: str | None) -> Entry:
        """This delta, marked as written by `agent` (its own timestamp, so it is the latest)."""
        self.agent = agent
        return self

    # --- reads -------------------------------------------------------------

    def live_kinds(self, now_ms: int) -> list[str]:
        kinds = []
        if (self.reg is not None and self.reg.visible(now_ms)) or (
            self.mv is not None and self.mv.siblings(now_ms)
        ):
            kinds.append(REGISTER)
        if self.counter is not None and self.counter.visible(now_ms):
            kinds.append(COUNTER)
        if self.orset is not None and self.orset.visible(now_ms):
            kinds.append(SET)
        return kinds

    def visible(self, now_ms: int) -> bool:
        """Whether any kind is live: `live_kinds` without building the list (every write
        asks this several times)."""
        if self.reg is not None and self.reg.visible(now_ms):
            return True
        return bool(
            (self.mv is not None and self.mv.siblings(now_ms))
            or (self.counter is not None and self.counter.visible(now_ms))
            or (self.orset is not None and self.orset.visible(now_ms))
        )

    def expires_at(self) -> int | None:
        """When the live part of this entry expires (None: never, or nothing live)."""
        times: list[int | None] = []
        if self.reg is not None and not self.reg.deleted:
            times.append(self.reg.expires_at)
        if self.mv is not None:
            times.extend(v.expires_at for v in self.mv.versions.values())
        if self.counter is not None and self.counter.live():
            times.append(self.counter.expires_at)
        if self.orset is not None and self.orset.live():
            times.append(self.orset.expires_at)
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)

    def dead_since(self) -> int:
        """Wall-clock ms from which an invisible entry counts as dead: its last write or expiry."""
        times = [wall_ms(self.ts)]
        if self.reg is not None and self.reg.expires_at is not None:
            times.append(self.reg.expires_at)
        if self.mv is not None:
            times.extend(v.expires_at for v in self.mv.versions.values() if v.expires_at)
        if self.counter is not None and self.counter.expires_at:
            times.append(self.counter.expires_at)
        if self.orset is not None and self.orset.expires_at:
            times.append(self.orset.expires_at)
        return max(times)

    def lasting_register(self) -> bool:
        """A live register alone that never expires: neither `next_due` nor `next_expiry`
        ever has a time for it (most entries are this, so writers ask first)."""
        reg = self.reg
        return (
            reg is not None
            and reg.expires_at is None
            and not reg.deleted
            and self.mv is None
            and self.counter is None
            and self.orset is None
        )

    def next_due(self, now_ms: int, grace_ms: int) -> int | None:
        """When this entry next needs the sweeper: an expiry to strip, or collection."""
        if self.expire(now_ms) is not None:
            return now_ms
        if not self.visible(now_ms):
            return self.dead_since() + grace_ms
        times: list[int] = []
        if self.reg is not None and not self.reg.deleted and self.reg.expires_at:
            times.append(self.reg.expires_at)
        if self.mv is not None:
            times.extend(v.expires_at for v in self.mv.versions.values() if v.expires_at)
        if self.counter is not None and self.counter.live() and self.counter.expires_at:
            times.append(self.counter.expires_at)
        if self.orset is not None and self.orset.live() and self.orset.expires_at:
            times.append(self.orset.expires_at)
        return min(times) if times else None

    def next_expiry(self, now_ms: int) -> int | None:
        """The next moment after `now_ms` at which a visible part of this entry expires."""
        times: list[int | None] = []
        if self.reg is not None and self.reg.visible(now_ms):
            times.append(self.reg.expires_at)
        if self.mv is not None:
            times.extend(v.expires_at for v in self.mv.versions.values() if v.visible(now_ms))
        if self.counter is not None and self.counter.visible(now_ms):
            times.append(self.counter.expires_at)
        if self.orset is not None and self.orset.visible(now_ms):
            times.append(self.orset.expires_at)
        future = [t for t in times if t is not None and t > now_ms]
        return min(future) if future else None

    def collectable(self, now_ms: int, grace_ms: int) -> bool:
        """True once the entry has been invisible for the grace period: it may be dropped."""
        return not self.visible(now_ms) and now_ms >= self.dead_since() + grace_ms

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and (
            self.ts,
            self.reg,
            self.mv,
            self.counter,
            self.orset,
            self.agent,
        ) == (other.ts, other.reg, other.mv, other.counter, other.orset, other.agent)

    def __hash__(self) -> int:
        return hash(self.ts)

    def __repr__(self) -> str:
        parts = [f"ts={self.ts}"]
        for name in ("reg", "mv", "counter", "orset", "agent"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"Entry({', '.join(parts)})"

    # --- delta mutators: each returns the delta to join locally and gossip ---

    def actor(self, node_id: str, ts: int) -> str:
        """The name under which `node_id` makes dots and counts on this entry.

        A node writes as `<node id>.<hex ts>`, a fresh name each time it starts
        an entry from nothing. Entries are dropped after deletion or expiry and
        later rewritten; with a fresh name, the new writes can never reuse a dot
        or a counter slot that some replica still remembers from before the
        drop, which would silently swallow them.
        """
        prefix = node_id + "."
        best, best_n = None, -1
        for name in self._actor_names():
            if name.startswith(prefix):
                try:
                    n = int(name[len(prefix) :], 16)
                except ValueError:
                    continue
                if n > best_n:
                    best, best_n = name, n
        return best if best is not None else f"{prefix}{ts:x}"

    def _actor_names(self) -> set[str]:
        names: set[str] = set()
        for cc in (self.mv.cc if self.mv else None, self.orset.cc if self.orset else None):
            if cc is not None:
                names.update(cc.vv)
                names.update(node for node, _ in cc.cloud)
        if self.counter is not None:
            names.update(self.counter.p)
            names.update(self.counter.n)
        return names

    def put_lww(
        self,
        ts: int,
        node: str,
        value: Any,
        meta: dict[str, Any] | None = None,
        vector: bytes | None = None,
        expires_at: int | None = None,
    ) -> Entry:
        """Delta of a register write; `value` and `meta` are brought into canonical form.

        A value kept as given (a map in insertion order) would encode to other
        bytes here than on every replica that decodes it, so anti-entropy would
        never see the two agree. Raises InvalidValue for what cannot be stored.
        """
        reg = LWWRegister(
            ts, node, canonical(value), canonical_meta(meta), vector, expires_at=expires_at
        )
        return Entry(ts, reg=reg)

    def put_mv(self, ts: int, node: str, version: Version) -> Entry:
        """Delta of an MV write; the version's value and meta are made canonical, as in put_lww."""
        version = Version(
            canonical(version.value),
            version.ts,
            canonical_meta(version.meta),
            version.vector,
            version.expires_at,
            version.agent,
        )
        return Entry(max(ts, version.ts), mv=(self.mv or MVRegister()).write(node, version))

    def incr(self, ts: int, node: str, by: int, expires_at: int | None, now_ms: int) -> Entry:
        base = self.counter or PNCounter()
        if base.live() and not base.visible(now_ms):
            # An expired counter restarts from zero: reset what it held, then count.
            reset = base.reset()
            base = base.join(reset)
            return Entry(ts, counter=reset.join(base.increment(node, by, expires_at, ts)))
        return Entry(ts, counter=base.increment(node, by, expires_at, ts))

    def sadd(
        self, ts: int, node: str, members: Iterable[str], expires_at: int | None, now_ms: int
    ) -> Entry:
        base = self.orset or ORSet()
        if base.live() and not base.visible(now_ms):
            cleared = base.clear()
            delta = cleared.join(base.join(cleared).add(node, members, expires_at, ts))
            # The join drops members left without dots, but a delta must still
            # name every member it clears: the store applies it member by member.
            for member in cleared.elems:
                delta.elems.setdefault(member, frozenset())
            return Entry(ts, orset=delta)
        return Entry(ts, orset=base.add(node, members, expires_at, ts))

    def srem(self, ts: int, members: Iterable[str]) -> Entry:
        return Entry(ts, orset=(self.orset or ORSet()).remove(members))

    def delete(self, ts: int, node: str) -> Entry:
        """Delta turning every present kind into its tombstone."""
        delta = Entry(ts)
        if self.reg is not None:
            delta.reg = LWWRegister.tombstone(ts, node)
        if self.mv is not None:
            delta.mv = self.mv.clear()
        if self.counter is not None:
            delta.counter = self.counter.reset()
        if self.orset is not None:
            delta.orset = self.orset.clear()
        return delta

    def expire(self, now_ms: int) -> Entry | None:
        """Delta that strips what has expired down to tombstones, or None if nothing has.

        A register's or an MV version's expiry is fixed by its own write, so
        every replica strips the same thing. A counter's or a set's expiry is a
        max-register that concurrent writes extend: a replica that expires it
        before such a write arrives floors or clears what it held then, one
        that received the write first does not. Such deltas converge once they
        (or full states holding them) reach every replica; a replica that keeps
        its expiry to itself differs from the others until anti-entropy runs.
        The delta carries the entry's `ts` and `agent`, so it stays a well-formed
        entry that names the same latest writer.
        """
        delta = Entry(self.ts, agent=self.agent)
        changed = False
        if (
            self.reg is not None
            and not self.reg.deleted
            and self.reg.expires_at is not None
            and now_ms >= self.reg.expires_at
        ):
            # Same (ts, node) as the write it replaces; a deleted payload sorts
            # after a live one, so the stripped form wins on every replica.
            delta.reg = LWWRegister(
                self.reg.ts, self.reg.node, deleted=True, expires_at=self.reg.expires_at
            )
            changed = True
        if self.mv is not None:
            expired = self.mv.expired_dots(now_ms)
            if expired:
                delta.mv = self.mv.drop(expired)
                changed = True
        if self.counter is not None and self.counter.live() and not self.counter.visible(now_ms):
            delta.counter = self.counter.reset()
            changed = True
        if self.orset is not None and self.orset.live() and not self.orset.visible(now_ms):
            delta.orset = self.orset.clear()
            changed = True
        return delta if changed else None
