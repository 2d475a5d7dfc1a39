"""Add-wins observed-remove set, delta-state, on dots and a causal context.

Each add gives the element a fresh dot; a remove carries the dots of the
element its issuer observed and nothing else, so an add the remover had not
seen survives (add wins), and a removal leaves no per-element tombstone: the
removed dots simply stay in the causal context.

Mutator deltas name every element they touch, even when they leave it with no
dots (a remove). The store relies on that to apply a delta to a large set by
loading only the named members, never the whole set. A full state (from
anti-entropy) carries no such promise and is joined against every member.

Expiry is a last-writer-wins register of the adds' TTLs, as for counters.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmnode.crdt.causal import CausalContext, Dot
from swarmnode.crdt.counter import Expiry, join_expiry
from swarmnode.crdt.dotkernel import join_dot_set

Member = str


class ORSet:
    __slots__ = ("cc", "elems", "expires_at", "expiry_ts")

    def __init__(
        self,
        elems: dict[Member, frozenset[Dot]] | None = None,
        cc: CausalContext | None = None,
        expires_at: int | None = 0,
        expiry_ts: int = 0,
    ) -> None:
        self.elems: dict[Member, frozenset[Dot]] = elems if elems is not None else {}
        self.cc = cc if cc is not None else CausalContext()
        self.expires_at = expires_at
        self.expiry_ts = expiry_ts

    def members(self) -> list[Member]:
        return sorted(e for e, dots in self.elems.items() if dots)

    def live(self) -> bool:
        return any(self.elems.values())

    def visible(self, now_ms: int) -> bool:
        return self.live() and (self.expires_at is None or now_ms < self.expires_at)

    @property
    def expiry(self) -> Expiry:
        return (self.expiry_ts, self.expires_at)

    def add(
        self, node: str, members: Iterable[Member], expires_at: int | None, ts: int = 0
    ) -> ORSet:
        """Delta, written at `ts`, adding each member with a fresh dot over its older dots."""
        seen = CausalContext()
        delta_elems: dict[Member, frozenset[Dot]] = {}
        top = self.cc.max_counter(node)
        for member in dict.fromkeys(members):
            top += 1
            dot = (node, top)
            delta_elems[member] = frozenset((dot,))
            seen.cloud.add(dot)
            seen.cloud.update(self.elems.get(member, ()))
        seen.compact()
        return ORSet(delta_elems, seen, expires_at, ts)

    def remove(self, members: Iterable[Member]) -> ORSet:
        """Delta removing the observed dots of each member (add-wins against unseen adds)."""
        seen = CausalContext()
        delta_elems: dict[Member, frozenset[Dot]] = {}
        for member in dict.fromkeys(members):
            dots = self.elems.get(member)
            if dots:
                delta_elems[member] = frozenset()
                seen.cloud.update(dots)
        seen.compact()
        return ORSet(delta_elems, seen)

    def clear(self) -> ORSet:
        """Delta removing every observed member (a delete of the whole set)."""
        return self.remove(list(self.elems))

    def join(self, other: ORSet) -> ORSet:
        elems: dict[Member, frozenset[Dot]] = {}
        for member in self.elems.keys() | other.elems.keys():
            dots = join_dot_set(
                self.elems.get(member, frozenset()),
                self.cc,
                other.elems.get(member, frozenset()),
                other.cc,
            )
            if dots:
                elems[member] = frozenset(dots)
        ts, at = join_expiry(self.expiry, other.expiry)
        return ORSet(elems, self.cc.join(other.cc), at, ts)

    def __eq__(self, other: object) -> bool:
        # Members named without dots count: a delta that names a member is not
        # the delta that does not (the store acts on the names), and the two
        # encode differently. A join never keeps such members, so full states
        # compare as sets.
        return (
            isinstance(other, ORSet)
            and self.elems == other.elems
            and self.cc == other.cc
            and self.expiry == other.expiry
        )

    def __hash__(self) -> int:
        return hash(tuple(self.members()))

    def __repr__(self) -> str:
        return f"ORSet({self.members()!r}, {self.cc!r})"
