"""One simulation run: build a cluster, load it, hurt it, heal it, judge it.

The phases, all in virtual time:
1. start the nodes and let membership form (`warmup`);
2. run the workload for `duration` while the nemesis injects faults;
3. stop every fault (one crashed node may stay down) and let the protocols
   converge by themselves, up to a bound; record how long that took;
4. check membership (the node kept down must be dead everywhere), restart it;
5. converge again; if gossip and periodic anti-entropy have not converged
   within the bound, that is a liveness violation, and `sync` rounds are run
   until quiet so the safety oracles can still be checked;
6. run the oracles.

Raft's safety oracles watch every node's consensus group at every step
throughout (`raftwatch.py`). With `consensus_clients`, clients of the group
(cas, linearizable reads, claims, conflicting writes to a consensus
namespace; `consensus_workload.py`) run beside the workload, and their
history is judged too: the linearizability checker on the CAS history,
claims that never overlap with growing fencing tokens, every conflict
decided everywhere.

A run is a pure function of its `RunSpec`: the same spec (seed included)
gives the same history and the same final digests, in any process.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from swarmnode.config import Config
from swarmnode.consensus.oracles import SafetyViolation
from swarmnode.membership.suspicion import suspicion_bounds
from swarmnode.node import SyncReport
from swarmnode.sim import oracles
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.consensus_workload import ConsensusWorkload, ConsensusWorkloadConfig
from swarmnode.sim.nemesis import Nemesis, NemesisConfig, scenario_kinds
from swarmnode.sim.network import Latency, LinkProfile, NetStats
from swarmnode.sim.workload import History, Workload, WorkloadConfig


@dataclass
class RunSpec:
    """Everything a run depends on; `command()` gives the line that replays it."""

    scenario: str = "mixed"
    seed: int = 0
    nodes: int = 5
    # Node configuration profile: "local" (fast timers) or "lan" (the defaults).
    profile: str = "local"
    # Seconds of workload (and faults).
    duration: float = 20.0
    # Seconds for the cluster to form before the workload starts.
    warmup: float = 3.0
    # Client operations per second over the whole cluster.
    rate: float = 20.0
    # One-way link latency (median seconds) of the healthy network.
    latency: float = 0.002
    tick_mode: str = "deadline"
    # Share of puts with a TTL. Above 0 the run also shortens the tombstone grace
    # to `grace` and, after the first checks, waits until everything dead has
    # been collected and checks again: expiry, sweeping and collection are judged.
    ttl_share: float = 0.0
    # Clients of the consensus group (cas, linearizable get, claim/renew/release, puts to a
    # consensus namespace); 0: none.
    consensus_clients: int = 0

    def command(self) -> str:
        parts = [
            "python -m swarmnode.sim",
            f"--scenario {self.scenario}",
            f"--seed {self.seed}",
            f"--nodes {self.nodes}",
        ]
        defaults = RunSpec()
        for name, flag in (
            ("profile", "--profile"),
            ("duration", "--duration"),
            ("warmup", "--warmup"),
            ("rate", "--rate"),
            ("latency", "--latency"),
            ("tick_mode", "--tick-mode"),
            ("ttl_share", "--ttl-share"),
            ("consensus_clients", "--consensus-clients"),
        ):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                parts.append(f"{flag} {value}")
        return " ".join(parts)


@dataclass
class RunResult:
    spec: RunSpec
    violations: list[str] = field(default_factory=list)
    history: History = field(default_factory=History)
    digests: dict[int, dict[str, str]] = field(default_factory=dict)
    converge_after_heal: float | None = None
    converge_after_restart: float | None = None
    settle_bound: float = 0.0
    detection_bound: float = 0.0
    detections: list[dict[str, Any]] = field(default_factory=list)
    nemesis_log: list[str] = field(default_factory=list)
    net: NetStats = field(default_factory=NetStats)
    virtual_seconds: float = 0.0
    wall_seconds: float = 0.0
    events: int = 0
    forced_syncs: int = 0
    consensus: dict[str, int] = field(default_factory=dict)
    """What the consensus clients did and how much was checked (empty without them)."""
    consensus_history: list[str] = field(default_factory=list)
    """The CAS history in the checker's JSONL format (`swarmnode check` reads it)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def fingerprint(self) -> str:
        """Hash of the history and the final digests: equal iff the runs replayed alike."""
        h = hashlib.sha256()
        for line in self.history.lines():
            h.update(line.encode() + b"\n")
        for line in self.consensus_history:
            h.update(line.encode() + b"\n")
        for index, per_ns in sorted(self.digests.items()):
            h.update(f"{index} {sorted(per_ns.items())}\n".encode())
        return h.hexdigest()

    def summary(self) -> str:
        acked = len(self.history.acked())
        verdict = "PASS" if self.ok else "FAIL"
        conv = "never" if self.converge_after_heal is None else f"{self.converge_after_heal:.2f}s"
        c = self.consensus
        group = (
            f", consensus: {c.get('cas', 0)} cas ({c.get('cas_ok', 0)} ok), "
            f"{c.get('read', 0)} linearizable reads, {c.get('granted', 0)} claims granted, "
            f"{c.get('checked_ops', 0)} operations checked linearizable"
            if c
            else ""
        )
        return (
            f"{verdict} {self.spec.scenario} seed={self.spec.seed} nodes={self.spec.nodes}: "
            f"{len(self.history.ops)} ops ({acked} acked){group}, converged {conv} after heal, "
            f"{self.net.messages} messages, {self.virtual_seconds:.1f}s virtual in "
            f"{self.wall_seconds:.1f}s wall"
            + ("" if self.ok else f"; {len(self.violations)} violation(s)")
        )


def settle_bound(config: Config, max_skew: float) -> float:
    """How long after the faults stop gossip and anti-entropy may take to converge by themselves.

    Halves that declared each other dead meet again through `reconnect_interval`
    push-pulls; a node's fresh writes are refused by peers whose clocks trail
    it by more than the max offset until those clocks catch up; then a few
    anti-entropy intervals repair what gossip lost.
    """
    m = config.membership
    _, longest = suspicion_bounds(m.suspicion_mult, m.suspicion_max_timeout_mult, 2, 1.0)
    return (
        3 * m.reconnect_interval
        + 6 * config.antientropy.interval
        + longest * m.probe_interval
        + 2 * max_skew
        + 5.0
    )


def detection_bound(config: Config, nodes: int) -> float:
    """How long a crashed node may stay alive in the others' views.

    Some node probes it within one round of its probe order (n - 1 intervals at
    worst), the suspicion then runs for at most the longest timeout, and the
    dead fact needs a few gossip rounds to reach everyone.
    """
    m = config.membership
    _, longest = suspicion_bounds(
        m.suspicion_mult, m.suspicion_max_timeout_mult, nodes, m.probe_interval
    )
    return nodes * m.probe_interval + longest + 10 * m.gossip_interval


TTL_GRACE = 20.0
"""Tombstone grace (s) of runs with TTLs: longer than any fault window and its repair,
shorter than the run, so tombstones are collected while the oracles watch. A replica
cut off for longer than the grace can resurrect deleted data (the documented limit)."""


def node_config(spec: RunSpec) -> Config:
    config = Config.for_profile(spec.profile)
    if spec.ttl_share > 0:
        config.store = replace(config.store, tombstone_grace=TTL_GRACE)
    return config


def run(
    spec: RunSpec,
    *,
    config: Config | None = None,
    workload: WorkloadConfig | None = None,
    nemesis: NemesisConfig | None = None,
    workdir: Path | None = None,
) -> RunResult:
    """Run one simulation; never raises for a node's failure, it becomes a violation."""
    started = time.perf_counter()
    config = config or node_config(spec)
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="swarmsim-")) if own_dir else Path(workdir)
    link = LinkProfile(latency=Latency(spec.latency, 0.5, "uniform"))
    cluster = Cluster(
        ClusterConfig(
            seed=spec.seed,
            nodes=spec.nodes,
            link=link,
            tick_mode=spec.tick_mode,
            invariants_every=1.0 if spec.nodes <= 50 else 0.0,
        ),
        config,
        root,
    )
    result = RunResult(spec)
    try:
        _run_phases(spec, cluster, result, workload, nemesis)
    except SafetyViolation as exc:
        result.violations.append(f"Raft safety: {exc}")
    except Exception:
        result.violations.append("exception in the simulation:\n" + traceback.format_exc())
    finally:
        result.virtual_seconds = cluster.now
        result.events = cluster.loop.events_run
        result.net = cluster.network.stats.snapshot()
        cluster.close()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
        result.wall_seconds = time.perf_counter() - started
    return result


def _run_phases(
    spec: RunSpec,
    cluster: Cluster,
    result: RunResult,
    workload_config: WorkloadConfig | None,
    nemesis_config: NemesisConfig | None,
) -> None:
    wl_config = replace(
        workload_config or WorkloadConfig(), rate=spec.rate, ttl_share=spec.ttl_share
    )
    if spec.ttl_share > 0:
        # A node kept down past the grace could resurrect what was deleted meanwhile.
        nemesis_config = replace(nemesis_config or NemesisConfig(), keep_one_down=False)
    cluster.start()
    cluster.run_for(spec.warmup)
    workload = Workload(cluster, wl_config, random.Random(f"{spec.seed}/workload"))
    result.history = workload.history
    nemesis = Nemesis(
        cluster,
        scenario_kinds(spec.scenario),
        random.Random(f"{spec.seed}/nemesis"),
        nemesis_config,
    )
    start, end = cluster.now, cluster.now + spec.duration
    workload.schedule(start, end)
    group_clients = None
    if spec.consensus_clients > 0:
        group_clients = ConsensusWorkload(
            cluster,
            ConsensusWorkloadConfig(clients=spec.consensus_clients),
            random.Random(f"{spec.seed}/consensus"),
        )
        group_clients.schedule(start, end)
    nemesis.schedule(start, end)
    cluster.run_until(end)
    nemesis.stop()

    max_skew = max((abs(sn.skew) for sn in cluster.nodes), default=0.0)
    bound = settle_bound(cluster.node_config, max_skew)
    result.settle_bound = bound
    result.detection_bound = detection_bound(cluster.node_config, spec.nodes)
    result.converge_after_heal = _settle(cluster, bound)
    if result.converge_after_heal is None:
        result.violations.append(_unsettled("the faults stopped", cluster, bound))
    if nemesis.kept_down is not None:
        # Give the kept-down node's death time to reach everyone, then judge membership.
        crashed_at = max(d.at for d in nemesis.detections if d.node == nemesis.kept_down)
        cluster.run_until(max(cluster.now, crashed_at + result.detection_bound))
        result.violations.extend(oracles.check_membership(cluster))
        nemesis.release()
        result.converge_after_restart = _settle(cluster, bound)
        if result.converge_after_restart is None:
            result.violations.append(_unsettled("the last node restarted", cluster, bound))
    result.detections = nemesis.finish_detections()
    result.nemesis_log = nemesis.log
    if not (oracles.converged(cluster) and oracles.membership_settled(cluster)):
        result.forced_syncs = _sync_until_quiet(cluster)
    result.violations.extend(oracles.check_membership(cluster))
    result.violations.extend(oracles.check_detection(result.detections, result.detection_bound))
    result.violations.extend(oracles.check_replicas(cluster))
    result.violations.extend(oracles.check_history(cluster, workload.history, wl_config.ns))
    result.violations.extend(f"t={at:.3f}: {what}" for at, what in workload.violations)
    if group_clients is not None:
        _judge_consensus(cluster, group_clients, result, bound)
    if cluster.raft_watch is not None:
        cluster.raft_watch.check()
    if spec.ttl_share > 0 and not result.violations:
        # Everything dead is collectable once the grace has passed after the
        # last expiry; sweep it away everywhere, then judge again.
        grace = cluster.node_config.store.tombstone_grace
        cluster.run_for(grace + wl_config.ttl[1] + 2 * max_skew + 2.0)
        if _settle(cluster, bound) is None:
            result.violations.append(_unsettled("tombstones were collected", cluster, bound))
        result.violations.extend(oracles.check_replicas(cluster))
        result.violations.extend(oracles.check_history(cluster, workload.history, wl_config.ns))
    result.digests = {
        sn.index: {ns: root.hex() for ns, root in oracles.roots(sn).items()}
        for sn in cluster.live()
    }


def _judge_consensus(
    cluster: Cluster, clients: ConsensusWorkload, result: RunResult, bound: float
) -> None:
    """Wait (bounded) for every conflict to be decided everywhere, then judge the clients'
    history: claims, decisions, and the linearizability checker on the CAS history."""
    start = cluster.now
    while clients.undecided() and cluster.now - start < bound:
        cluster.run_for(SETTLE_STEP)
    result.violations.extend(clients.violations)
    result.violations.extend(clients.check_decided())
    result.violations.extend(clients.check())
    result.consensus = dict(clients.counts)
    result.consensus["claim_holds"] = clients.claims.grants
    result.consensus_history = clients.history.lines()


SETTLE_STEP = 0.1
"""Virtual seconds between two checks for convergence."""


def _settle(cluster: Cluster, bound: float) -> float | None:
    """Run until replicas and membership agree; the time it took, None if not within `bound`."""
    start = cluster.now
    while True:
        if oracles.converged(cluster) and oracles.membership_settled(cluster):
            return cluster.now - start
        if cluster.now - start >= bound:
            return None
        cluster.run_for(SETTLE_STEP)


def _unsettled(after: str, cluster: Cluster, bound: float) -> str:
    what = []
    if not oracles.converged(cluster):
        what.append("replicas differ")
    what.extend(oracles.check_membership(cluster)[:5])
    return f"not converged {bound:.1f}s after {after}: {'; '.join(what)}"


def _sync_until_quiet(cluster: Cluster, rounds: int = 10) -> int:
    """Run `sync` on every live node, again and again, until replicas agree; returns the count."""
    for attempt in range(1, rounds + 1):
        reports: list[SyncReport] = []
        live = cluster.live()
        for sn in live:
            cluster.call(
                sn.index,
                lambda host, done=reports.append: cluster.loop.create_task(
                    host.sync()
                ).add_done_callback(lambda t: t.cancelled() or t.exception() or done(t.result())),
            )
        deadline = cluster.now + cluster.node_config.node.sync_timeout + 1.0
        while len(reports) < len(live) and cluster.now < deadline:
            cluster.run_for(SETTLE_STEP)
        cluster.run_for(1.0)
        if oracles.converged(cluster) and oracles.membership_settled(cluster):
            return attempt
    return rounds
