"""This node's picture of the sharded namespaces: owners, and what it still waits for.

`PartitionMap` keeps, for the settled view, the owners of every partition of
every sharded namespace (rank order), and which partitions this node owns
but has not received yet (`filling`). A partition becomes filling here when a
view change makes this node one of its owners; it is ready again once some
holder has handed it over (or copied it) completely, or once every node that
could hold it said it has nothing to give. A node reads a partition locally
only when it is ready, and anti-entropy leaves filling partitions alone (the
handover fills them; a repair round would send the same data twice).

At start the map takes the view the node had settled on before it stopped:
what it owned then it still holds, so nothing is filling. A node that never
settled a view (new, or wiped) fills everything it owns in its first view.
"""

from __future__ import annotations

from collections.abc import Mapping

from swarmnode.placement.hashing import partition_nodes, partition_of
from swarmnode.placement.plan import Move, Sharding, plan
from swarmnode.placement.rendezvous import owner_table, ranked
from swarmnode.placement.view import View


class PartitionMap:
    def __init__(self, self_id: str, fanout: int, depth: int, view: View | None = None) -> None:
        self.self_id = self_id
        self.fanout = fanout
        self.depth = depth
        self.view: View | None = view
        self._sharding: dict[str, Sharding] = {}
        self._tables: dict[str, list[tuple[str, ...]]] = {}
        self.filling: dict[tuple[str, int], float] = {}
        """(ns, partition) -> since when this node waits for it."""

    # --- what is sharded --------------------------------------------------------

    def sharding(self, ns: str) -> Sharding | None:
        return self._sharding.get(ns)

    @property
    def namespaces(self) -> Mapping[str, Sharding]:
        return self._sharding

    def set_namespaces(
        self, now: float, namespaces: Mapping[str, Sharding], *, fill: bool = True
    ) -> list[Move]:
        """The sharded namespaces changed (a definition arrived or changed): new owners.

        `fill=False` at start: what this node owned when it stopped, it holds."""
        moves: list[Move] = []
        members = self.members()
        for ns in list(self._sharding):
            if ns not in namespaces:
                del self._sharding[ns]
                self._tables.pop(ns, None)
                self.filling = {k: v for k, v in self.filling.items() if k[0] != ns}
        for ns, sharding in namespaces.items():
            old = self._sharding.get(ns)
            if old == sharding:
                continue
            self._sharding[ns] = sharding
            table = owner_table(ns, sharding.partitions, members, sharding.replicas)
            before = self._tables.get(ns)
            self._tables[ns] = table
            if self.view is None or not fill:
                continue
            same = before is not None and old is not None and old.partitions == sharding.partitions
            for p, owners in enumerate(table):
                was = before[p] if same else ()
                if set(was) != set(owners):
                    moves.append(Move(ns, p, was, owners))
                    if self.self_id in owners and self.self_id not in was:
                        self.filling[(ns, p)] = now
        return moves

    # --- the view ------------------------------------------------------------------

    def members(self) -> View:
        return self.view if self.view is not None else (self.self_id,)

    def set_view(self, now: float, view: View) -> list[Move]:
        """Placement follows a new settled view; returns the moves it implies."""
        old = self.view
        self.view = view
        moves = plan(old or (), view, self._sharding)
        for ns, sharding in self._sharding.items():
            self._tables[ns] = owner_table(ns, sharding.partitions, view, sharding.replicas)
        for move in moves:
            key = (move.ns, move.partition)
            if self.self_id not in move.after:
                self.filling.pop(key, None)
            elif old is None or self.self_id not in move.before:
                self.filling[key] = now
        return moves

    # --- owners ----------------------------------------------------------------------

    def partition_of(self, ns: str, key: str) -> int:
        return partition_of(key, self._sharding[ns].partitions)

    def owners(self, ns: str, partition: int) -> tuple[str, ...]:
        """The owners of a partition, best ranked first."""
        return self._tables[ns][partition]

    def owns(self, ns: str, partition: int) -> bool:
        return self.self_id in self._tables[ns][partition]

    def ready(self, ns: str, partition: int) -> bool:
        """Owned here and complete: reads of it may be served from this node's store."""
        return self.owns(ns, partition) and (ns, partition) not in self.filling

    def filled(self, ns: str, partition: int) -> bool:
        """The partition was handed over completely; False if it was not filling."""
        return self.filling.pop((ns, partition), None) is not None

    def fill_sources(self, ns: str, partition: int) -> list[str]:
        """Who may hold a partition this node waits for: its other owners and the member
        ranked just below them (after a join, the one the newcomer displaced)."""
        sharding = self._sharding[ns]
        order = ranked(ns, partition, self.members())
        keep = len(order) if sharding.replicas is None else sharding.replicas + 1
        return [m for m in order[:keep] if m != self.self_id]

    def owned(self, ns: str) -> list[int]:
        """Partitions of `ns` this node owns."""
        return [p for p, owners in enumerate(self._tables[ns]) if self.self_id in owners]

    def nodes(self, ns: str, partition: int) -> list[tuple[int, int]]:
        """The Merkle tree nodes (level, index) holding a partition's keys."""
        return partition_nodes(partition, self._sharding[ns].partitions, self.fanout, self.depth)

    def partition_level(self, ns: str) -> int:
        """The tree level whose nodes lie within one partition each."""
        return partition_nodes(0, self._sharding[ns].partitions, self.fanout, self.depth)[0][0]

    def partitions_under(self, ns: str, level: int, index: int) -> range:
        """The partitions whose keys lie under tree node (level, index): one, or (above the
        partition level) every partition of the node's subtree."""
        bits = self._sharding[ns].partitions.bit_length() - 1
        step = self.fanout.bit_length() - 1
        below = level * step - bits
        if below >= 0:
            return range(index >> below, (index >> below) + 1)
        return range(index << -below, (index + 1) << -below)

    def covering_nodes(self, ns: str, partitions: set[int]) -> list[tuple[int, int]]:
        """The fewest tree nodes covering exactly `partitions`: a subtree whose partitions
        are all in the set is named by its root (the whole tree, when it is every one)."""
        level = self.partition_level(ns)
        current = sorted({node for p in partitions for node in self.nodes(ns, p)})
        result: list[tuple[int, int]] = []
        while current and level > 0:
            groups: dict[int, list[int]] = {}
            for _, index in current:
                groups.setdefault(index // self.fanout, []).append(index)
            current = []
            for parent, children in sorted(groups.items()):
                if len(children) == self.fanout:
                    current.append((level - 1, parent))
                else:
                    result.extend((level, child) for child in children)
            level -= 1
        return sorted(result + current)
