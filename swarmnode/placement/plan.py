"""The moves between two placements: what each partition gains and loses.

A move is computed, never negotiated: every node that sees the same two member
lists derives the same moves. A partition's new owners that were not owners
before must receive it; old owners that are no longer owners must hand it over
and may drop it only once the new ones have it (see `handoff`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from swarmnode.placement.rendezvous import owner_table


@dataclass(frozen=True)
class Sharding:
    """What placement needs of a namespace definition."""

    partitions: int
    replicas: int | None
    """None: every member holds every partition."""


@dataclass(frozen=True)
class Move:
    """One partition whose owner set changes."""

    ns: str
    partition: int
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def gained(self) -> tuple[str, ...]:
        """New owners: they must receive the partition."""
        return tuple(m for m in self.after if m not in self.before)

    @property
    def lost(self) -> tuple[str, ...]:
        """Former owners: they hand it over, then drop it."""
        return tuple(m for m in self.before if m not in self.after)


def plan(
    before: Iterable[str], after: Iterable[str], namespaces: Mapping[str, Sharding]
) -> list[Move]:
    """Every partition of `namespaces` whose owners differ between the two member lists."""
    old, new = sorted(set(before)), sorted(set(after))
    moves = []
    for ns in sorted(namespaces):
        sharding = namespaces[ns]
        was = owner_table(ns, sharding.partitions, old, sharding.replicas)
        now = owner_table(ns, sharding.partitions, new, sharding.replicas)
        for p, (a, b) in enumerate(zip(was, now, strict=True)):
            if set(a) != set(b):
                moves.append(Move(ns, p, a, b))
    return moves
