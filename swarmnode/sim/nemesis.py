"""Fault schedules: which faults a scenario injects, when, and how they end.

A nemesis draws a sequence of fault windows over the workload's time span:
each window injects one fault drawn from its scenario's kinds, holds it for
a while, then heals it, with a gap before the next. Window lengths scale
with the membership probe interval, so a window is long enough to get nodes
suspected and declared dead under either profile. `stop` ends every fault
(and restarts every crashed node but the one a scenario keeps down to check
that it is declared dead); clock skews stay, as clocks on real hosts do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from swarmnode.membership.state import MemberState
from swarmnode.sim.cluster import Cluster
from swarmnode.sim.network import Latency

FAULTS = ("halves", "minority", "oneway", "crash", "loss", "links", "slow", "skew", "late", "join")

SCENARIOS: dict[str, tuple[str, ...]] = {
    "calm": (),
    "partition": ("halves", "minority", "oneway"),
    "crash": ("crash",),
    "loss": ("loss", "links", "late"),
    "skew": ("skew",),
    "slow": ("slow",),
    "mixed": ("halves", "minority", "oneway", "crash", "loss", "links", "slow", "skew", "late"),
    "sharded": ("crash", "halves", "minority", "loss", "join"),
}
"""Scenario name -> the faults its nemesis draws from."""

GONE = (MemberState.DEAD, MemberState.LEFT)


@dataclass
class NemesisConfig:
    """How hard the nemesis pushes; times are multiples of the probe interval."""

    # Length of one fault window, in probe intervals (drawn uniformly).
    window: tuple[float, float] = (5.0, 25.0)
    # Quiet gap between windows, in probe intervals.
    gap: tuple[float, float] = (2.0, 10.0)
    # Datagram loss during a loss window (drawn uniformly), with duplication and reordering.
    loss: tuple[float, float] = (0.1, 0.4)
    duplicate: float = 0.05
    reorder: float = 0.1
    # Seconds a slow node spends on each event it handles.
    service_time: tuple[float, float] = (0.005, 0.05)
    # Share of datagrams a "late" window duplicates, delivered after the tombstone
    # grace plus this many seconds (drawn uniformly).
    late_share: float = 0.3
    late_after: tuple[float, float] = (1.0, 5.0)
    # Clock skews, seconds: most nodes within the max offset, some beyond it.
    skew_within: float = 0.4
    skew_beyond: tuple[float, float] = (0.6, 3.0)
    # Keep one crashed node down through the first quiet phase, to check it is declared dead.
    keep_one_down: bool = True
    # Nodes a "join" window may add at most (each stays for the rest of the run).
    max_joins: int = 1


@dataclass
class Detection:
    """How long the rest of the cluster took to declare one crashed node dead."""

    node: int
    at: float
    node_id: str
    detected_after: float | None = None
    down_for: float = 0.0
    done: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "at": self.at,
            "detected_after": self.detected_after,
            "down_for": self.down_for,
        }


class Nemesis:
    def __init__(
        self,
        cluster: Cluster,
        kinds: tuple[str, ...],
        rng: random.Random,
        config: NemesisConfig | None = None,
    ) -> None:
        unknown = set(kinds) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        self.cluster = cluster
        self.kinds = kinds
        self.rng = rng
        self.config = config or NemesisConfig()
        self.base_link = cluster.network.default
        self.log: list[str] = []
        self.detections: list[Detection] = []
        self.kept_down: int | None = None
        self.joined = 0
        self._watching = False
        self._unit = cluster.node_config.membership.probe_interval

    # --- scheduling -----------------------------------------------------------------

    def schedule(self, start: float, end: float) -> None:
        """Draw the fault windows of [start, end); every one is healed by `end`."""
        if "skew" in self.kinds:
            self.cluster.loop.call_at(start, self._skew_clocks)
        windowed = [k for k in self.kinds if k != "skew"]
        if not windowed:
            return
        cfg, rng, unit = self.config, self.rng, self._unit
        t = start + rng.uniform(*cfg.gap) * unit
        while t < end:
            length = min(rng.uniform(*cfg.window) * unit, end - t)
            kind = rng.choice(windowed)
            self.cluster.loop.call_at(t, self._begin, kind, t + length)
            t += length + rng.uniform(*cfg.gap) * unit

    def _note(self, text: str) -> None:
        self.log.append(f"t={self.cluster.now:.3f} {text}")

    def _begin(self, kind: str, until: float) -> None:
        getattr(self, f"_fault_{kind}")(until)

    # --- the faults -------------------------------------------------------------------

    def _split(self) -> tuple[list[int], list[int]]:
        order = list(range(len(self.cluster.nodes)))
        self.rng.shuffle(order)
        half = len(order) // 2
        return sorted(order[:half]), sorted(order[half:])

    def _addrs(self, indexes: list[int]) -> list:
        return [self.cluster.nodes[i].addr for i in indexes]

    def _fault_halves(self, until: float) -> None:
        a, b = self._split()
        self.cluster.network.partition(self._addrs(a), self._addrs(b))
        self._note(f"partition halves {a} | {b}")
        self.cluster.loop.call_at(until, self._heal_network)

    def _fault_minority(self, until: float) -> None:
        n = len(self.cluster.nodes)
        k = self.rng.randint(1, max(1, (n - 1) // 2))
        minority = sorted(self.rng.sample(range(n), k))
        self.cluster.network.partition(self._addrs(minority))
        self._note(f"isolate minority {minority}")
        self.cluster.loop.call_at(until, self._heal_network)

    def _fault_oneway(self, until: float) -> None:
        a, b = self._split()
        self.cluster.network.cut_one_way(self._addrs(a), self._addrs(b))
        self._note(f"one-way cut {a} -> {b}")
        self.cluster.loop.call_at(until, self._heal_network)

    def _heal_network(self) -> None:
        self.cluster.network.heal()
        self._note("network healed")

    def _fault_loss(self, until: float) -> None:
        cfg = self.config
        loss = self.rng.uniform(*cfg.loss)
        median = self.base_link.latency.median
        self.cluster.network.default = replace(
            self.base_link,
            latency=Latency(median, 1.0, "lognormal"),
            loss=loss,
            duplicate=cfg.duplicate,
            reorder=cfg.reorder,
        )
        self._note(f"lossy links: loss {loss:.2f} dup {cfg.duplicate} reorder {cfg.reorder}")
        self.cluster.loop.call_at(until, self._restore_links)

    def _fault_late(self, until: float) -> None:
        """Datagrams delivered again after the tombstone grace: replays of old deltas."""
        grace = self.cluster.node_config.store.tombstone_grace
        delay = grace + self.rng.uniform(*self.config.late_after)
        self.cluster.network.default = replace(
            self.base_link, late_duplicate=self.config.late_share, late_delay=delay
        )
        self._note(f"late duplicates: {self.config.late_share:.0%} again after {delay:.1f}s")
        self.cluster.loop.call_at(until, self._restore_links)

    def _restore_links(self) -> None:
        self.cluster.network.default = self.base_link
        self._note("links restored")

    def _fault_links(self, until: float) -> None:
        """A few node pairs get bad links: ten times the latency, long tail, heavy loss."""
        n = len(self.cluster.nodes)
        pairs = sorted({tuple(sorted(self.rng.sample(range(n), 2))) for _ in range(max(1, n // 2))})
        median = self.base_link.latency.median
        bad = replace(
            self.base_link,
            latency=Latency(10 * median, 1.0, "lognormal"),
            loss=self.rng.uniform(*self.config.loss),
        )
        for a, b in pairs:
            self.cluster.network.set_link(
                self.cluster.nodes[a].addr, self.cluster.nodes[b].addr, bad
            )
        self._note(f"bad links {pairs}: loss {bad.loss:.2f}, latency x10")
        self.cluster.loop.call_at(until, self._fix_links)

    def _fix_links(self) -> None:
        self.cluster.network.clear_links()
        self._note("links fixed")

    def _fault_slow(self, until: float) -> None:
        up = [sn.index for sn in self.cluster.live()]
        if not up:
            return
        index = self.rng.choice(up)
        service = self.rng.uniform(*self.config.service_time)
        self.cluster.set_slow(index, service)
        self._note(f"n{index} slow: {service * 1000:.1f} ms per event")
        self.cluster.loop.call_at(until, self._unslow, index)

    def _unslow(self, index: int) -> None:
        self.cluster.set_slow(index, 0.0)
        self._note(f"n{index} fast again")

    def _fault_join(self, until: float) -> None:
        """A new node joins for good (sharded namespaces move partitions to it)."""
        if self.joined >= self.config.max_joins:
            return
        self.joined += 1
        sn = self.cluster.add_node()
        self._note(f"join n{sn.index}")

    def _fault_crash(self, until: float) -> None:
        n = len(self.cluster.nodes)
        up = [sn.index for sn in self.cluster.live()]
        if n - len(up) >= (n - 1) // 2 or len(up) <= 1:
            return
        index = self.rng.choice(up)
        self.crash(index)
        self.cluster.loop.call_at(until, self.restart, index)

    def _skew_clocks(self) -> None:
        cfg = self.config
        n = len(self.cluster.nodes)
        beyond = set(self.rng.sample(range(n), max(1, n // 4)))
        for i in range(n):
            if i in beyond:
                skew = self.rng.uniform(*cfg.skew_beyond) * self.rng.choice((-1, 1))
            else:
                skew = self.rng.uniform(-cfg.skew_within, cfg.skew_within)
            self.cluster.set_skew(i, skew)
        skews = {i: round(self.cluster.nodes[i].skew, 3) for i in range(n)}
        self._note(f"clock skews {skews}")

    # --- crashes and their detection --------------------------------------------------

    def crash(self, index: int) -> None:
        sn = self.cluster.nodes[index]
        if not sn.up:
            return
        self.cluster.crash(index)
        self._note(f"crash n{index}")
        self.detections.append(Detection(index, self.cluster.now, sn.node_id))
        if not self._watching:
            self._watching = True
            self.cluster.loop.call_later(0.0, self._watch)

    def restart(self, index: int) -> None:
        if self.cluster.nodes[index].up:
            return
        for d in self.detections:
            if d.node == index and not d.done:
                d.done = True
                d.down_for = self.cluster.now - d.at
        self.cluster.restart(index)
        self._note(f"restart n{index}")

    def _watch(self) -> None:
        """Poll every live node's view of each crashed node until all hold it dead."""
        now = self.cluster.now
        pending = False
        for d in self.detections:
            if d.done or d.detected_after is not None:
                continue
            pending = True
            viewers = [sn for sn in self.cluster.live() if sn.booted_at <= d.at]
            if all(self._gone(sn, d.node_id) for sn in viewers):
                d.detected_after = now - d.at
        if pending:
            self.cluster.loop.call_later(0.1, self._watch)
        else:
            self._watching = False

    @staticmethod
    def _gone(sn: Any, node_id: str) -> bool:
        info = sn.node.membership.member(node_id)
        return info is None or info.state in GONE

    def stop(self) -> None:
        """End every fault now; restart crashed nodes but the one kept down, if any."""
        self.cluster.network.heal()
        self.cluster.network.default = self.base_link
        self.cluster.network.clear_links()
        for sn in self.cluster.nodes:
            sn.service_time = 0.0
        down = [sn.index for sn in self.cluster.nodes if not sn.up]
        n = len(self.cluster.nodes)
        if self.config.keep_one_down and "crash" in self.kinds and n >= 4:
            if not down:
                self.kept_down = self.rng.choice([sn.index for sn in self.cluster.live()])
                self.crash(self.kept_down)
            else:
                self.kept_down = down[0]
        for index in down:
            if index != self.kept_down:
                self.restart(index)
        self._note("faults stopped")

    def release(self) -> None:
        """Restart the node kept down (after its death was checked)."""
        if self.kept_down is not None:
            self.restart(self.kept_down)
            self.kept_down = None

    def finish_detections(self) -> list[dict[str, Any]]:
        now = self.cluster.now
        for d in self.detections:
            if not d.done:
                d.down_for = now - d.at
        return [d.as_dict() for d in self.detections]


def scenario_kinds(name: str) -> tuple[str, ...]:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    return SCENARIOS[name]
