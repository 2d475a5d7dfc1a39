"""Randomized fault runs of a simulated Raft group, one seed each.

A run: a group forms; clients claim keys, move CAS counters, read through
ReadIndex and decide conflicts, while a nemesis crashes and restarts nodes,
partitions the network, isolates nodes, flaps links and drops bursts of
messages. Raft's safety properties and the clients' histories are checked at
every step (`oracles.py`, `simworkload.py`). Then the faults stop and the run
must converge: one leader, every node applied everything, identical state
machines, and a new proposal commits. Last, the run's CAS history (every CAS
and ReadIndex read the clients saw) goes through the linearizability checker.

    python -m swarmnode.consensus.chaos --seed 17
    python -m swarmnode.consensus.chaos --seed 1 --seeds 200 --nodes 5

A failing seed prints itself and the command that replays it exactly.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmnode.consensus import machine as m
from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.oracles import RaftOracles, SafetyViolation
from swarmnode.consensus.records import ConfChange
from swarmnode.consensus.simnet import SimCluster, uniform_latency
from swarmnode.consensus.simworkload import (
    HistoryViolation,
    Workload,
    WorkloadConfig,
    chaos_config,
)


@dataclass
class ChaosOptions:
    nodes: int = 5
    learners: int = 0
    fault_ms: float = 6_000.0
    after_heal_ms: float = 1_000.0
    """Clients keep going this long after the faults stop, before they are stopped."""
    settle_ms: float = 8_000.0
    storage: str = "memory"
    disk_ms: float = 0.0
    autopilot: bool = False
    permanent_crash: bool = False
    config: RaftConfig = field(default_factory=chaos_config)


@dataclass
class ChaosResult:
    seed: int
    ok: bool
    error: str = ""
    sim_ms: float = 0.0
    wall_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    """The CAS history in the checker's JSONL format, when the run was asked to keep it."""

    def replay(self, options: ChaosOptions) -> str:
        flags = f"--seed {self.seed} --nodes {options.nodes} --learners {options.learners}"
        flags += f" --storage {options.storage} --disk-ms {options.disk_ms}"
        if options.autopilot:
            flags += " --autopilot"
        if options.permanent_crash:
            flags += " --permanent-crash"
        return f"python -m swarmnode.consensus.chaos {flags}"


class Nemesis:
    """Random faults on a schedule, from the run's own random generator."""

    def __init__(self, cluster: SimCluster, rng: random.Random, keep_down: str | None) -> None:
        self.cluster = cluster
        self.rng = rng
        self.keep_down = keep_down
        self.log: list[str] = []
        self.stopped = False
        self.gone = False

    def start(self, fault_ms: float) -> None:
        self.cluster.schedule(self.rng.uniform(100, 400), self._act)
        if self.keep_down is not None:
            self.cluster.schedule(self.rng.uniform(0, fault_ms / 2), self._crash_for_good)

    def _crash_for_good(self) -> None:
        assert self.keep_down is not None
        self.gone = True
        self.cluster.crash(self.keep_down)
        self._note(f"crash {self.keep_down} for good")

    def _act(self) -> None:
        if self.stopped:
            return
        c = self.cluster
        ids = sorted(c.nodes)
        live = [n for n in ids if c.nodes[n].alive]
        actions = ["crash", "partition", "isolate", "isolate_leader", "flap", "drop", "heal"]
        action = self.rng.choice(actions)
        leader = c.leader()
        if action == "isolate_leader" and leader is not None:
            c.isolate(leader)
            self._note(f"isolate leader {leader}")
            action = "done"
        if action == "crash" and live:
            victim = self.rng.choice(live)
            c.crash(victim)
            if victim != self.keep_down:
                c.schedule(self.rng.uniform(50, 1500), self._restart, victim)
            self._note(f"crash {victim}")
        elif action == "partition":
            shuffled = ids[:]
            self.rng.shuffle(shuffled)
            cut = self.rng.randint(1, len(ids) - 1)
            c.partition(shuffled[:cut], shuffled[cut:])
            self._note(f"partition {sorted(shuffled[:cut])} | {sorted(shuffled[cut:])}")
        elif action == "isolate":
            victim = self.rng.choice(ids)
            c.isolate(victim)
            self._note(f"isolate {victim}")
        elif action == "flap":
            a, b = self.rng.sample(ids, 2)
            for k in range(6):
                c.schedule(k * 40.0, c.cut, a, b)
                c.schedule(k * 40.0 + 20.0, self._unblock, a, b)
            self._note(f"flap {a}-{b}")
        elif action == "drop":
            c.faults.drop = self.rng.uniform(0.05, 0.4)
            c.schedule(self.rng.uniform(100, 800), self._stop_drop)
            self._note(f"drop {c.faults.drop:.2f}")
        elif action != "done":
            c.heal()
            self._note("heal")
        c.schedule(self.rng.uniform(100, 700), self._act)

    def _restart(self, node: str) -> None:
        if node == self.keep_down and self.gone:
            return
        self.cluster.restart(node)
        self._note(f"restart {node}")

    def _unblock(self, a: str, b: str) -> None:
        self.cluster.faults.blocked.discard((a, b))
        self.cluster.faults.blocked.discard((b, a))

    def _stop_drop(self) -> None:
        self.cluster.faults.drop = 0.0

    def _note(self, what: str) -> None:
        self.log.append(f"{self.cluster.now_ms:9.1f} ms {what}")


def run(seed: int, options: ChaosOptions, keep_history: bool = False) -> ChaosResult:
    """One run; never raises for a violation, it is reported in the result."""
    started = time.perf_counter()
    rng = random.Random(seed)
    ids = [f"n{i}" for i in range(options.nodes + options.learners)]
    voters = ids[: options.nodes]
    oracles = RaftOracles()
    cluster = SimCluster(
        ids,
        config=options.config,
        seed=rng.randrange(2**32),
        voters=voters,
        latency_ms=uniform_latency(0.3, 3.0),
        disk_ms=options.disk_ms,
        storage=options.storage,
        oracles=oracles,
    )
    cluster.faults.duplicate = 0.02
    keep_down = rng.choice(voters) if options.permanent_crash else None
    workload = Workload(
        cluster, random.Random(rng.random()), WorkloadConfig(autopilot=options.autopilot)
    )
    nemesis = Nemesis(cluster, random.Random(rng.random()), keep_down)
    result = ChaosResult(seed, True)
    try:
        _add_learners(cluster, ids[options.nodes :])
        workload.start()
        nemesis.start(options.fault_ms)
        cluster.run_for(options.fault_ms)
        nemesis.stopped = True
        cluster.heal()
        cluster.faults.drop = 0.0
        cluster.faults.duplicate = 0.0
        for node in ids:
            if node != keep_down:
                cluster.restart(node)
        cluster.run_for(options.after_heal_ms)
        workload.stop()
        _converge(cluster, options.settle_ms, keep_down)
        if options.permanent_crash and options.autopilot:
            _check_replaced(cluster, keep_down, options.settle_ms)
        workload.check_linearizable()
    except (SafetyViolation, HistoryViolation, ConvergenceFailure) as exc:
        result.ok = False
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        cluster.close()
    result.sim_ms = cluster.now_ms
    result.wall_s = time.perf_counter() - started
    result.counts = dict(workload.counts)
    result.counts.update(cluster.counters)
    result.counts["claims_checked"] = workload.claims.grants
    result.counts["oracle_steps"] = oracles.steps
    result.faults = nemesis.log
    if keep_history:
        result.history = workload.history.lines()
    return result


class ConvergenceFailure(AssertionError):
    """After the faults stopped, the group did not settle within the time allowed."""


def _add_learners(cluster: SimCluster, learners: list[str]) -> None:
    for learner in learners:
        if not cluster.run_until_true(lambda: not cluster.change_pending(), 10_000):
            raise ConvergenceFailure("no leader able to take a configuration change")
        leader = cluster.leader()
        assert leader is not None
        change = ConfChange("add_learner", learner)
        cluster.step_node(leader, lambda r, change=change: r.propose_conf_change(change))


def _converge(cluster: SimCluster, timeout_ms: float, keep_down: str | None) -> None:
    def settled() -> bool:
        lraft = cluster.leader_raft()
        if lraft is None:
            return False
        if lraft.log.committed != lraft.log.last_index():
            return False
        if lraft.log.term(lraft.log.committed) != lraft.term:
            return False
        for node in cluster.nodes.values():
            if node.id == keep_down or node.id not in lraft.conf.members():
                continue
            if not node.alive or node.raft is None or node.raft.log.applied < lraft.log.committed:
                return False
        return True

    if not cluster.run_until_true(settled, timeout_ms):
        raise ConvergenceFailure(f"no convergence within {timeout_ms} ms: {_describe(cluster)}")
    snapshots: dict[int, dict[str, bytes]] = {}
    for node in cluster.nodes.values():
        if node.alive and node.machine is not None and node.id != keep_down:
            snapshots.setdefault(node.machine.applied, {})[node.id] = node.machine.snapshot()
    for applied, by_node in snapshots.items():
        if len(set(by_node.values())) > 1:
            raise ConvergenceFailure(f"state machines differ at applied index {applied}")
    leader = cluster.leader()
    assert leader is not None
    answers: list[Any] = []
    cluster.propose(leader, m.cas("probe", "k", m.ABSENT, 1), answers.append)
    if not cluster.run_until_true(lambda: bool(answers), 2_000) or answers[0] is None:
        raise ConvergenceFailure("a proposal after the faults did not commit")


def _check_replaced(cluster: SimCluster, dead: str | None, timeout_ms: float) -> None:
    def replaced() -> bool:
        raft = cluster.leader_raft()
        return raft is not None and dead not in raft.conf.members() and len(raft.conf.voters) >= 3

    if not cluster.run_until_true(replaced, timeout_ms):
        raise ConvergenceFailure(f"dead voter {dead} was not replaced: {_describe(cluster)}")


def _describe(cluster: SimCluster) -> str:
    parts = []
    for node in cluster.nodes.values():
        if not node.alive or node.raft is None:
            parts.append(f"{node.id}: down")
            continue
        s = node.raft.status()
        parts.append(
            f"{node.id}: {s['role']} t{s['term']} commit {s['commit']} applied {s['applied']} "
            f"last {s['last_index']} voters {s['voters']}"
        )
    return "; ".join(parts)


def sweep(
    seeds: range, options: ChaosOptions, progress: Callable[[ChaosResult], None] | None = None
) -> list[ChaosResult]:
    results = []
    for seed in seeds:
        result = run(seed, options)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--learners", type=int, default=0)
    parser.add_argument("--storage", choices=["memory", "lmdb"], default="memory")
    parser.add_argument("--disk-ms", type=float, default=0.0)
    parser.add_argument("--fault-ms", type=float, default=6_000.0)
    parser.add_argument("--autopilot", action="store_true")
    parser.add_argument("--permanent-crash", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print the fault schedule")
    parser.add_argument(
        "--history",
        metavar="FILE",
        help="write the CAS history of a single seed (JSONL, for `swarmnode check`)",
    )
    args = parser.parse_args(argv)
    options = ChaosOptions(
        nodes=args.nodes,
        learners=args.learners,
        fault_ms=args.fault_ms,
        storage=args.storage,
        disk_ms=args.disk_ms,
        autopilot=args.autopilot,
        permanent_crash=args.permanent_crash,
    )
    failures = 0

    def report(result: ChaosResult) -> None:
        nonlocal failures
        status = "ok" if result.ok else "FAIL"
        print(
            f"seed {result.seed}: {status} ({result.wall_s:.1f} s wall, "
            f"{result.sim_ms / 1000:.1f} s simulated, {result.counts.get('proposed', 0)} "
            f"proposals, {result.counts.get('claims_checked', 0)} claim holds, "
            f"{result.counts.get('checked_ops', 0)} CAS/read operations checked)",
            flush=True,
        )
        if not result.ok:
            failures += 1
            print(f"  {result.error}\n  replay: {result.replay(options)}", flush=True)
        if args.verbose or not result.ok:
            for line in result.faults[-20:]:
                print(f"    {line}")

    if args.history:
        result = run(args.seed, options, keep_history=True)
        report(result)
        Path(args.history).write_text("".join(line + "\n" for line in result.history))
        print(f"  history: {args.history} (swarmnode check {args.history})")
    else:
        sweep(range(args.seed, args.seed + args.seeds), options, report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
