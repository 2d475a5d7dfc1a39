"""Time from a conflict to its decision on every node, in virtual time, over many seeds.

The simulation form of `benchmarks/consensus.py`'s second figure: whole nodes
(the production `Node`, service layer, LMDB stores and consensus group; see
`swarmnode/sim/`) on a simulated LAN (one-way latency 0.5 to 1.5 ms), with no
machine in the way, so the figure is what the protocols themselves cost. Each
seed forms a cluster and waits for the consensus group (every node a voter),
then, `--conflicts` times, two different nodes `put` the same key of the
`decisions` namespace (policy consensus) at the same virtual instant. The
figure is the time from the later write's acknowledgement until every node
holds one decided version of the key (polled every 2 ms of virtual time).

What that time is made of: the writes gossip to every node; a node that sees
the siblings waits three gossip intervals (so its proposal covers every
sibling gossip may still bring), then proposes the decision at its next tick;
the leader commits it in one round trip; each follower learns the commit with
the leader's next append or heartbeat, applies it and writes the decided
version. So for the `lan` profile (gossip every 200 ms, node and Raft ticks of
100 ms) it should be about 0.6 s plus up to two ticks; for `local` (gossip
every 100 ms, Raft ticks of 10 ms) about 0.3 s plus a little.

Raft's safety oracles watch every step (`sim/raftwatch.py`).

    python simulations/consensus_decisions.py                  # 50 seeds per setting
    python simulations/consensus_decisions.py --seeds 5 --conflicts 5
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import log, plt, save_json, save_plot, save_report, table

from swarmnode.config import Config
from swarmnode.consensus.ready import Role
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.network import Latency, LinkProfile

NAME = "consensus_decisions"
NS = "decisions"
DECIDED_ACTOR = "~decided"
POLL = 0.002
FORM_LIMIT = 60.0
DECIDE_LIMIT = 30.0


def group_formed(c: Cluster, voters: int) -> bool:
    rafts = []
    for sn in c.nodes:
        group = sn.node.consensus if sn.node is not None else None
        if group is None or group.raft is None:
            return False
        rafts.append(group.raft)
    leaders = [r for r in rafts if r.role is Role.LEADER]
    return len(leaders) == 1 and all(len(r.conf.voters) == voters for r in rafts)


def run_until(c: Cluster, done: Any, limit: float, step: float) -> float | None:
    start = c.now
    while not done():
        if c.now - start >= limit:
            return None
        c.run_for(step)
    return c.now - start


def agreed(c: Cluster, key: str) -> tuple[bool, bool]:
    """(every node holds the same one version, and it is a decision)."""
    dots = set()
    for sn in c.nodes:
        assert sn.store is not None
        entry = sn.store.get(NS, key)
        if entry is None or entry.mv is None:
            return False, False
        siblings = entry.mv.siblings()
        if len(siblings) != 1:
            return False, False
        dots.add(siblings[0][0])
    if len(dots) != 1:
        return False, False
    return True, next(iter(dots))[0] == DECIDED_ACTOR


def one_seed(profile: str, nodes: int, seed: int, conflicts: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="swarmsim-"))
    c = Cluster(
        ClusterConfig(
            seed=seed,
            nodes=nodes,
            start_spread=1.0,
            link=LinkProfile(latency=Latency(0.001, 0.5, "uniform")),
            tick_mode="deadline",
            invariants_every=1.0,
        ),
        Config.for_profile(profile),
        workdir,
    )
    rng = random.Random(f"{seed}/decisions")
    out: dict[str, Any] = {"seed": seed, "times": [], "no_conflict": 0, "timeouts": 0}
    try:
        c.start()
        formed = run_until(c, lambda: group_formed(c, min(nodes, 5)), FORM_LIMIT, 0.1)
        if formed is None:
            raise RuntimeError(f"seed {seed}: no consensus group of {min(nodes, 5)} voters")
        out["formed_s"] = formed
        for n in range(conflicts):
            a, b = rng.sample(range(nodes), 2)
            outcome = conflict(c, f"conflict-{n}", (a, b))
            if outcome is None:
                out["timeouts"] += 1
            elif outcome[1]:
                out["times"].append(outcome[0])
            else:
                out["no_conflict"] += 1
            c.run_for(rng.uniform(0.1, 0.5))
        if c.raft_watch is not None:
            c.raft_watch.check()
    finally:
        c.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def conflict(c: Cluster, key: str, writers: tuple[int, int]) -> tuple[float, bool] | None:
    """Two nodes write `key` at once; (seconds from the later ack until every node holds
    one version, whether that version is a decision), or None if not within the limit."""
    acks: list[float] = []
    for index in writers:
        sn = c.nodes[index]

        def send(_host: Any, sn: Any = sn, value: str = f"from {index}") -> None:
            assert sn.service is not None
            args = {"ns": NS, "key": key, "value": value}
            task = c.loop.create_task(sn.service.call("put", args, _Ctx()))
            task.add_done_callback(lambda _t: acks.append(c.now))

        c.call(index, send)
    if run_until(c, lambda: len(acks) == 2, DECIDE_LIMIT, POLL) is None:
        raise RuntimeError(f"writes of {key} not acknowledged")
    acked = max(acks)
    if run_until(c, lambda: agreed(c, key)[0], DECIDE_LIMIT, POLL) is None:
        return None
    return c.now - acked, agreed(c, key)[1]


class _Ctx:
    observe = None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=50, help="seeds per setting")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--conflicts", type=int, default=10, help="conflicts per seed")
    p.add_argument("--sizes", nargs="+", type=int, default=[3, 5])
    p.add_argument("--profiles", nargs="+", default=["lan", "local"], choices=["lan", "local"])
    args = p.parse_args()
    started = time.perf_counter()
    settings = []
    for profile in args.profiles:
        for size in args.sizes:
            runs = []
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                runs.append(one_seed(profile, size, seed, args.conflicts))
                if len(runs) % 10 == 0:
                    log(f"{profile} N={size}: {len(runs)}/{args.seeds} seeds")
            times = [t for r in runs for t in r["times"]]
            settings.append(
                {
                    "profile": profile,
                    "nodes": size,
                    "runs": runs,
                    "times": times,
                    "no_conflict": sum(r["no_conflict"] for r in runs),
                    "timeouts": sum(r["timeouts"] for r in runs),
                }
            )
            log(
                f"{profile} N={size}: median {statistics.median(times) * 1000:.0f} ms, "
                f"{len(times)} decisions"
            )
    wall = time.perf_counter() - started
    save_json(NAME, {"args": vars(args), "settings": settings, "wall_s": wall})
    rows = [
        [
            s["profile"],
            s["nodes"],
            len(s["times"]),
            s["no_conflict"],
            s["timeouts"],
            f"{pct(s['times'], 0.5) * 1000:.0f}",
            f"{pct(s['times'], 0.9) * 1000:.0f}",
            f"{pct(s['times'], 0.99) * 1000:.0f}",
            f"{max(s['times']) * 1000:.0f}" if s["times"] else "-",
        ]
        for s in settings
    ]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for s in settings:
        xs = sorted(t * 1000 for t in s["times"])
        if xs:
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=f"{s['profile']}, {s['nodes']} nodes")
    ax.set(xlabel="virtual ms from the later write's ack to the decision on every node")
    ax.set(ylabel="share of conflicts", title="Conflict to decision everywhere (simulated)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_plot(fig, NAME)
    command = (
        f"python simulations/consensus_decisions.py --seeds {args.seeds} --first-seed "
        f"{args.first_seed} --conflicts {args.conflicts} --sizes "
        f"{' '.join(map(str, args.sizes))} --profiles {' '.join(args.profiles)}"
    )
    header = [
        "profile",
        "nodes",
        "decisions timed",
        "writes that did not conflict",
        "not decided in 30 s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
    ]
    save_report(
        NAME,
        f"""# Time from a conflict to its decision on every node (simulated)

`{command}`, {wall:.0f} s of wall time on a shared 2-core machine; virtual time, so
the figures do not depend on the host's load.

Whole simulated nodes on a LAN of 0.5 to 1.5 ms one-way latency; two nodes write one
key of `decisions` at the same virtual instant; the figure is the virtual time from the
later write's acknowledgement until every node holds the same decided version (see the
module docstring for what it is made of). Raft's safety oracles watched every step.

{table(header, rows)}

![CDF of the time to decision](consensus_decisions.png)
""",
    )
    log(f"done in {wall:.0f} s")


if __name__ == "__main__":
    main()
