"""A long soak of real node processes under every fault, with their memory and files watched.

Five `swarmnode run` processes in network namespaces take a steady client
load for an hour while the chaos harness partitions, kills, pauses, skews,
fills the disk of and rotates the key of them on a seeded schedule. RSS and
open file descriptors of every node are sampled every few seconds. What
must hold: every oracle of the harness at the end, and no growth beyond the
configured caches: for each node's longest stretch without a restart, the
RSS at its end may exceed the RSS 10 minutes into it by no more than the
configured caches (read cache plus vector cache), and the open files return
to their early level.

    python simulations/chaos_soak.py                 # 60 minutes (as root)
    python simulations/chaos_soak.py --minutes 5     # a short look

Writes results/chaos_soak.md, .json, and the plots chaos_soak_latency.png and
chaos_soak_resources.png; the history stays in the scratch directory named
in the report (it is large).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from swarmnode.chaos.report import plot_resources
from swarmnode.chaos.run import ChaosOptions, result_json, run_chaos
from swarmnode.config import Config

RESULTS = Path(__file__).resolve().parent / "results"


def stretches(samples: list[tuple], node: int) -> list[list[tuple]]:
    """A node's samples cut where it was restarted (its RSS drops to a fresh process's)."""
    runs: list[list[tuple]] = [[]]
    for s in samples:
        if s[1] != node:
            continue
        if s[2] is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(s)
    return [r for r in runs if r]


def growth(samples: list[tuple], nodes: int, warmup: float) -> list[dict]:
    out = []
    for node in range(nodes):
        runs = stretches(samples, node)
        longest = max(runs, key=lambda r: r[-1][0] - r[0][0])
        start = longest[0][0]
        warm = [s for s in longest if s[0] >= start + warmup] or longest
        out.append(
            {
                "node": node,
                "restarts": len(runs) - 1,
                "stretch_s": round(longest[-1][0] - start, 1),
                "rss_warm_mib": round(warm[0][2] / 2**20, 1),
                "rss_end_mib": round(longest[-1][2] / 2**20, 1),
                "rss_max_mib": round(max(s[2] for s in longest) / 2**20, 1),
                "files_warm": warm[0][3],
                "files_end": longest[-1][3],
                "files_max": max(s[3] or 0 for s in longest),
            }
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="chaos-soak-"))
    opts = ChaosOptions(
        nodes=args.nodes,
        seed=args.seed,
        duration=args.minutes * 60,
        clients=6,
        rate=5.0,
        fault_seconds=(5.0, 20.0),
        gap_seconds=(10.0, 30.0),
        converge_timeout=300.0,
        out=scratch,
        sample_interval=5.0,
    )
    result = run_chaos(opts)
    cfg = Config.for_profile("local")
    caches_mib = (cfg.store.read_cache_bytes + cfg.vectors.cache_bytes) / 2**20
    warmup = min(600.0, args.minutes * 60 / 4)
    rows = growth(result.resources, args.nodes, warmup)
    bounded = all(r["rss_end_mib"] - r["rss_warm_mib"] <= caches_mib for r in rows)
    files_ok = all(r["files_end"] <= r["files_warm"] + 8 for r in rows)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(scratch / "latency.png", args.out / "chaos_soak_latency.png")
    plot_resources(
        result.resources,
        args.out / "chaos_soak_resources.png",
        title=f"{args.nodes} nodes, {args.minutes:g} min under every fault: RSS and open files",
    )
    data = result_json(result) | {
        "growth": rows,
        "caches_mib": caches_mib,
        "rss_bounded": bounded,
        "files_bounded": files_ok,
        "history": str(scratch / "history.jsonl"),
    }
    (args.out / "chaos_soak.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    report = (scratch / "report.md").read_text()
    lines = [
        f"# Soak: {args.nodes} real nodes, {args.minutes:g} minutes under every fault",
        "",
        "Command: `python simulations/chaos_soak.py"
        + (f" --minutes {args.minutes:g}" if args.minutes != 60 else "")
        + "` (as root: network namespaces, nftables, tmpfs).",
        "",
        f"Memory growth bound: RSS at the end of each node's longest run without a restart "
        f"may exceed its RSS {warmup / 60:g} minutes in by at most the configured caches "
        f"({caches_mib:.0f} MiB: `store.read_cache_bytes` + `vectors.cache_bytes`): "
        f"**{'met' if bounded else 'NOT met'}**. Open files back to their early level "
        f"(+8): **{'met' if files_ok else 'NOT met'}**.",
        "",
        "| node | restarts | longest run s | RSS warm MiB | RSS end MiB | RSS max MiB "
        "| files warm | files end | files max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['node']} | {r['restarts']} | {r['stretch_s']} | {r['rss_warm_mib']} | "
            f"{r['rss_end_mib']} | {r['rss_max_mib']} | {r['files_warm']} | {r['files_end']} | "
            f"{r['files_max']} |"
        )
    lines += [
        "",
        "![resources](chaos_soak_resources.png)",
        "",
        "![latency](chaos_soak_latency.png)",
        "",
        "## The run's own report",
        "",
        report.replace("# Chaos run", "### Chaos run"),
    ]
    (args.out / "chaos_soak.md").write_text("\n".join(lines))
    print("\n".join(lines[:20]))
    return 0 if result.ok and bounded and files_ok else 1


if __name__ == "__main__":
    sys.exit(main())
