"""Measurements taken from a running simulated cluster, for the scenario reports.

`Visibility` times each tracked write from its acknowledgement to the moment
it became visible on every node that should have it: the propagation latency
of epidemic theory and of the gossip challenge. `Sampler` records the state of
the cluster (membership agreement, replica agreement, traffic) at a fixed
virtual-time step, for the timelines in the plots.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmnode.membership.state import MemberState
from swarmnode.sim import oracles
from swarmnode.sim.cluster import Cluster, SimNode
from swarmnode.storage.ops import Change


class Visibility:
    """When each tracked key became visible on each node."""

    def __init__(self, cluster: Cluster, ns: str) -> None:
        self.cluster = cluster
        self.ns = ns
        self.written: dict[str, float] = {}
        self.seen: dict[str, dict[int, float]] = {}
        cluster.listeners.append(self._on_change)

    def track(self, key: str) -> None:
        """Call before the write: its own node sees it at its acknowledgement."""
        self.written[key] = self.cluster.now
        self.seen[key] = {}

    def _on_change(self, sn: SimNode, change: Change) -> None:
        if change.ns != self.ns or not change.visible_after:
            return
        seen = self.seen.get(change.key)
        if seen is not None and sn.index not in seen:
            seen[sn.index] = self.cluster.now

    def latency(self, key: str, nodes: set[int]) -> float | None:
        """Seconds from the write until every node of `nodes` saw it, None if some never did."""
        seen = self.seen[key]
        if not nodes <= seen.keys():
            return None
        return max(seen[i] for i in nodes) - self.written[key]

    def latencies(self, nodes: set[int]) -> list[float | None]:
        return [self.latency(key, nodes) for key in self.written]

    def complete(self, nodes: set[int]) -> bool:
        return all(nodes <= seen.keys() for seen in self.seen.values())


def summarize(values: list[float]) -> dict[str, float]:
    """Median, 99th percentile and max of a sample (seconds or counts)."""
    if not values:
        return {"n": 0, "median": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"n": len(ordered), "median": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


@dataclass
class Sample:
    t: float
    live: int
    alive_pairs: float  # share of (viewer, live member) pairs where the viewer sees it alive
    dead_pairs: int  # (viewer, live member) pairs where the viewer holds it dead: false deaths
    converged: bool
    distinct_roots: int  # distinct root sets among live nodes (1 = all agree)
    messages: int
    by_type: Counter[str] = field(default_factory=Counter)


class Sampler:
    """Samples the cluster every `step` virtual seconds while the simulation runs."""

    def __init__(self, cluster: Cluster, step: float = 0.5, *, membership: bool = True) -> None:
        self.cluster = cluster
        self.step = step
        self.membership = membership
        self.samples: list[Sample] = []
        self._hooks: list[Callable[[Sample], None]] = []
        cluster.loop.call_later(0.0, self._sample)

    def _sample(self) -> None:
        c = self.cluster
        live = c.live()
        ids = {sn.node_id for sn in live}
        alive = total = dead = 0
        if self.membership:
            for sn in live:
                assert sn.node is not None
                for m in sn.node.membership.members():
                    if m.node_id in ids and m.node_id != sn.node_id:
                        total += 1
                        alive += m.state is MemberState.ALIVE
                        dead += m.state is MemberState.DEAD
        root_sets = {tuple(sorted(oracles.roots(sn).items())) for sn in live}
        stats = c.network.stats
        self.samples.append(
            Sample(
                c.now,
                len(live),
                alive / total if total else 1.0,
                dead,
                len(root_sets) <= 1,
                len(root_sets),
                stats.messages,
                Counter(stats.by_type),
            )
        )
        c.loop.call_later(self.step, self._sample)
