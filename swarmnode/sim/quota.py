"""Concurrent writers of one agent on several nodes, racing its quota: the documented bound.

An agent with a byte quota writes from every node at once, through the real
service layer (`Service.call`, the `quota` step included). Each node admits a
write while the agent's usage as it knows it, plus the writes it still has in
flight, plus this one, stays within the quota; writes admitted elsewhere count
only once they have arrived. So, together, the nodes can overrun the quota by
what they admitted while they could not yet see each other's writes. The bound
docs/ARCHITECTURE.md states, checked here over the whole run:

    final usage <= limit + sum over nodes j of W_j(D)

where D is the longest time any of the agent's writes took to reach another
node (measured in the run: from its commit at its origin to its commit at the
last other node) and W_j(D) the most bytes node j admitted in any window of
length D. One node alone never overruns (`W` of the others is 0 when there are
none); a partition makes D as long as the partition, and each side can then
fill the whole quota.

`quota_run(seed)` runs one scenario and returns its report; a failing seed
replays exactly (`python -m swarmnode.sim.quota --seed N`).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmnode.config import Config
from swarmnode.errors import QuotaExceeded
from swarmnode.sim.cluster import Cluster, ClusterConfig, SimNode
from swarmnode.storage import layout as L
from swarmnode.storage.ops import Change

AGENT = "q"
NS = f"agent:{AGENT}"


class _AgentContext:
    """What a trusted in-process caller (the simulator's client) presents: an agent id."""

    def __init__(self, agent: str) -> None:
        self.agent = agent


@dataclass
class QuotaReport:
    seed: int
    limit: int
    nodes: int
    final_usage: int
    admitted: int
    refused: int
    delay_s: float
    """D: the longest time one of the agent's writes took to reach every other node."""
    window_bytes: list[int]
    """W_j(D) per node."""
    bound: int = field(init=False)

    def __post_init__(self) -> None:
        self.bound = self.limit + sum(self.window_bytes)

    @property
    def overrun(self) -> int:
        return max(0, self.final_usage - self.limit)

    def check(self) -> None:
        """The oracle; its message replays the seed."""
        assert self.final_usage <= self.bound, (
            f"seed {self.seed}: usage {self.final_usage} exceeds the bound {self.bound} "
            f"(limit {self.limit}, D {self.delay_s:.3f}s, windows {self.window_bytes}); "
            f"replay: python -m swarmnode.sim.quota --seed {self.seed}"
        )


def quota_run(
    seed: int,
    workdir: Path,
    *,
    nodes: int = 2,
    limit: int = 30_000,
    writers_per_node: int = 2,
    rate: float = 400.0,
    duration: float = 4.0,
) -> QuotaReport:
    """One run: register the agent, let every node's writers race its quota, settle, measure."""
    rng = random.Random(f"{seed}/quota")
    config = ClusterConfig(seed=seed, nodes=nodes, vectors=False)
    cluster = Cluster(config, Config.for_profile("local"), workdir)
    committed: dict[str, dict[int, float]] = {}

    def seen(sn: SimNode, ch: Change) -> None:
        if ch.ns == NS and ch.visible_after:
            committed.setdefault(ch.key, {}).setdefault(sn.index, cluster.now)

    cluster.listeners.append(seen)
    admitted: list[tuple[int, float, str]] = []
    refused = [0]
    try:
        cluster.start()
        cluster.run_for(2.0)
        _call(cluster, 0, "agent_register", {"agent": AGENT, "quota": {"bytes": limit}}, None)
        cluster.run_for(3.0)
        for sn in cluster.nodes:
            listed = _call(cluster, sn.index, "agent_list", {"agent": AGENT}, None)
            assert listed["agents"], f"seed {seed}: node {sn.index} never learned the agent"
        start = cluster.now
        ctx = _AgentContext(AGENT)
        for sn in cluster.nodes:
            for w in range(writers_per_node):
                _Writer(cluster, sn.index, w, rng, rate, start + duration, ctx, admitted, refused)
        cluster.run_for(duration + 5.0)
        usages = {sn.index: sn.store.catalog.usage_of(AGENT)[0] for sn in cluster.nodes if sn.up}
        assert len(set(usages.values())) == 1, f"seed {seed}: nodes disagree on usage {usages}"
        final = next(iter(usages.values()))
        sizes = {key: _charged(cluster, key) for _, _, key in admitted}
        delay = 0.0
        for at in committed.values():
            if len(at) == nodes:
                delay = max(delay, max(at.values()) - min(at.values()))
        windows = [
            _max_window([(t, sizes.get(key, 0)) for node, t, key in admitted if node == j], delay)
            for j in range(nodes)
        ]
        return QuotaReport(seed, limit, nodes, final, len(admitted), refused[0], delay, windows)
    finally:
        cluster.close()


def _call(cluster: Cluster, index: int, op: str, args: dict[str, Any], ctx: Any) -> Any:
    sn = cluster.nodes[index]
    task = cluster.loop.create_task(sn.service.call(op, args, ctx))
    cluster.run_for(0.5)
    return task.result()


def _charged(cluster: Cluster, key: str) -> int:
    """The bytes one live entry costs (its record), read on the first live node."""
    sn = cluster.live()[0]
    ekey = L.entry_key(NS, key)
    with sn.store.read() as txn:
        raw = txn.get(ekey, db=sn.store.db["entries"])
    return len(ekey) + len(raw) if raw is not None else 0


def _max_window(events: list[tuple[float, int]], span: float) -> int:
    """The most bytes among `events` (time, bytes) inside any window of length `span`."""
    events.sort()
    best = total = lo = 0
    for t, size in events:
        total += size
        while events[lo][0] < t - span:
            total -= events[lo][1]
            lo += 1
        best = max(best, total)
    return best


class _Writer:
    """One client of one node: a write at a time, new keys, random sizes, until `end`."""

    def __init__(
        self,
        cluster: Cluster,
        node: int,
        writer: int,
        rng: random.Random,
        rate: float,
        end: float,
        ctx: Any,
        admitted: list[tuple[int, float, str]],
        refused: list[int],
    ) -> None:
        self.cluster, self.node, self.writer = cluster, node, writer
        self.rng, self.rate, self.end, self.ctx = rng, rate, end, ctx
        self.admitted, self.refused = admitted, refused
        self.count = 0
        self._next()

    def _next(self) -> None:
        at = self.cluster.now + self.rng.expovariate(self.rate)
        if at < self.end:
            self.cluster.loop.call_at(at, self._write)

    def _write(self) -> None:
        sn = self.cluster.nodes[self.node]
        key = f"n{self.node}w{self.writer}k{self.count}"
        self.count += 1
        value = "x" * self.rng.randint(50, 600)
        call = sn.service.call("put", {"ns": NS, "key": key, "value": value}, self.ctx)
        task = self.cluster.loop.create_task(call)
        task.add_done_callback(lambda t: self._done(t, key))

    def _done(self, task: Any, key: str) -> None:
        exc = task.exception()
        if exc is None:
            self.admitted.append((self.node, self.cluster.now, key))
        elif isinstance(exc, QuotaExceeded):
            self.refused[0] += 1
        else:
            raise exc
        self._next()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Replay one quota race of the simulator.")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--nodes", type=int, default=2)
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sn-quota-"))
    try:
        report = quota_run(args.seed, workdir, nodes=args.nodes)
        print(report)
        report.check()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
