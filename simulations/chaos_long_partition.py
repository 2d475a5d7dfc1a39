"""A partition held far longer than failure detection and the tombstone grace, then healed.

Five real nodes in network namespaces, split 2 | 3 by nftables for several
minutes under a steady client load on both sides (writes, deletes,
counters, sets, TTLs, vectors). The nodes run with scaled timers: the
`local` profile's failure detection (a dead peer is declared within a few
seconds) and `tombstone_grace` cut to 10 s, so tombstones on each side are
collected long before the halves meet again. Nothing calls `sync` or
rejoins anyone by hand: the halves must find each other again (dead
members are retried) and converge by themselves, and every oracle of the
chaos harness must hold afterwards.

Each side's view of the other is sampled every second, so the report says
when each half declared the other dead and how long after the heal every
node saw every node alive again.

    python simulations/chaos_long_partition.py --minutes 5    # as root

Writes results/chaos_long_partition.md, .json and .png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from swarmnode.chaos.cluster import ChaosCluster
from swarmnode.chaos.nemesis import Window
from swarmnode.chaos.run import ChaosOptions, result_json, run_chaos
from swarmnode.errors import SwarmError

RESULTS = Path(__file__).resolve().parent / "results"
NODE_CONFIG = """\
# Scaled timers: tombstones are collected 10 s after death, far inside the partition.
[store]
tombstone_grace = 10.0
"""
LEFT, RIGHT = [0, 1], [2, 3, 4]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="how long the partition holds")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="chaos-lp-"))
    config = scratch / "node.toml"
    config.write_text(NODE_CONFIG)
    held = args.minutes * 60
    start = 10.0
    # (t, members node 0 sees alive, node 4 alive, node 0 sees dead, node 4 dead)
    views: list[tuple[float, int, int, int, int]] = []

    def watch(cluster: ChaosCluster, clock: Callable[[], float], stop: threading.Event) -> None:
        ids = cluster.node_ids()
        while not stop.wait(1.0):
            alive, dead = [], []
            for i in (0, 4):
                try:
                    states = [
                        m["state"]
                        for m in cluster.client(i).members()["members"]
                        if m["node_id"] in ids
                    ]
                except SwarmError:
                    states = []
                alive.append(states.count("alive"))
                dead.append(states.count("dead"))
            row = (clock(), *alive, *dead)
            views.append(row)

    opts = ChaosOptions(
        nodes=5,
        seed=args.seed,
        duration=start + held + 10.0,
        faults=("partition",),
        clients=6,
        rate=10.0,
        converge_timeout=600.0,
        out=scratch,
        node_config=config,
        schedule=[Window(start, held, "partition", {"shape": "halves", "a": LEFT, "b": RIGHT})],
        watcher=watch,
    )
    result = run_chaos(opts)
    w = result.schedule[0]
    dead_left = next((v[0] for v in views if v[0] > start and v[3] == len(RIGHT)), None)
    dead_right = next((v[0] for v in views if v[0] > start and v[4] == len(LEFT)), None)
    healed = w.healed_at or 0.0
    merged = next((v[0] for v in views if v[0] > healed and v[1] == 5 and v[2] == 5), None)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(scratch / "latency.png", args.out / "chaos_long_partition_latency.png")
    plot(views, w.applied_at or start, healed, args.out / "chaos_long_partition.png")
    data = result_json(result) | {
        "partition_s": held,
        "tombstone_grace_s": 10.0,
        "left_saw_right_dead_after_s": None if dead_left is None else dead_left - start,
        "right_saw_left_dead_after_s": None if dead_right is None else dead_right - start,
        "membership_merged_after_heal_s": None if merged is None else merged - healed,
        "views": views,
    }
    (args.out / "chaos_long_partition.json").write_text(json.dumps(data, indent=2, default=str))
    report = (scratch / "report.md").read_text()

    def fmt(x: float | None) -> str:
        return "never" if x is None else f"{x:.1f} s"

    md = [
        f"# A {args.minutes:g}-minute partition, healed: {'PASS' if result.ok else 'FAIL'}",
        "",
        f"Command: `python simulations/chaos_long_partition.py --minutes {args.minutes:g}` "
        "(as root). Five real nodes split {0,1} | {2,3,4} by nftables inside their network "
        f"namespaces for {held:g} s under load on both sides; `tombstone_grace` 10 s, "
        "failure detection of the `local` profile (probe every 0.2 s).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| node 0 sees all of the other side dead after | "
        f"{fmt(data['left_saw_right_dead_after_s'])} |",
        f"| node 4 sees the other side dead after | {fmt(data['right_saw_left_dead_after_s'])} |",
        f"| partition held | {held:g} s ({held / 10:g} tombstone graces) |",
        f"| after the heal, nodes 0 and 4 both see all 5 alive after | "
        f"{fmt(data['membership_merged_after_heal_s'])} |",
        f"| after the heal, every oracle holds (replicas equal, membership settled) after | "
        f"{fmt(result.converged_after)} (from the end of the load, 10 s after the heal) |",
        "",
        "![membership](chaos_long_partition.png)",
        "",
        "![latency](chaos_long_partition_latency.png)",
        "",
        report.replace("# Chaos run", "## Chaos run"),
    ]
    (args.out / "chaos_long_partition.md").write_text("\n".join(md))
    print("\n".join(md[:16]))
    return 0 if result.ok else 1


def plot(views: list[tuple], cut: float, healed: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.axvspan(cut, healed, color="#f4a261", alpha=0.3, lw=0, label="partition")
    ax.step([v[0] for v in views], [v[1] for v in views], where="post", label="node 0 (side of 2)")
    ax.step([v[0] for v in views], [v[2] for v in views], where="post", label="node 4 (side of 3)")
    ax.set_ylabel("members seen alive")
    ax.set_xlabel("seconds since start")
    ax.set_ylim(0, 5.5)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
