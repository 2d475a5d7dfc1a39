"""The long batch: many seeds of every scenario on clusters of 3 to 9 nodes, in parallel.

Each failure is listed with the one-line command that replays it; the report
goes to results/batch.md. CI runs a small slice of the same runs
(tests/sim/test_batch_*.py); this is the command to run before a release or
after touching membership, replication or storage:

    python simulations/batch.py --seeds 200 --jobs 2
    python simulations/batch.py --scenarios partition crash --seeds 50 --duration 60
    python simulations/batch.py --consensus-clients 4 --report batch_consensus

With `--consensus-clients`, clients of the consensus group run beside the workload
(cas, linearizable get, claims, conflicting writes to a consensus namespace): their CAS
history goes through the linearizability checker, claims must never overlap, every
conflict must end decided everywhere. Raft's safety oracles watch every run.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

from common import log, save_report, table

from swarmnode.sim.nemesis import SCENARIOS
from swarmnode.sim.run import RunSpec, run

SIZES = (3, 4, 5, 6, 7, 8, 9)


def one(spec: RunSpec) -> dict:
    result = run(spec)
    return {
        "command": spec.command(),
        "ok": result.ok,
        "summary": result.summary(),
        "violations": result.violations[:10],
        "virtual": result.virtual_seconds,
        "wall": result.wall_seconds,
        "consensus": result.consensus,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenarios", nargs="+", default=sorted(set(SCENARIOS) - {"calm"}))
    p.add_argument("--seeds", type=int, default=100, help="seeds per scenario")
    p.add_argument("--first-seed", type=int, default=10_000)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--ttl-share",
        type=float,
        default=0.0,
        help="share of puts with a TTL (expiry and collection judged too)",
    )
    p.add_argument(
        "--consensus-clients",
        type=int,
        default=0,
        help="clients of the consensus group in every run (0: none)",
    )
    p.add_argument("--report", default="batch", help="name of the report in simulations/results")
    args = p.parse_args()
    specs = [
        RunSpec(
            scenario=s,
            seed=seed,
            nodes=SIZES[seed % len(SIZES)],
            duration=args.duration,
            ttl_share=args.ttl_share,
            consensus_clients=args.consensus_clients,
        )
        for s in args.scenarios
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for r in pool.map(one, specs):
            results.append(r)
            if not r["ok"]:
                log(r["summary"])
                for v in r["violations"]:
                    log(f"  violation: {v}")
                log(f"  replay: {r['command']}")
    wall = time.perf_counter() - started
    failed = [r for r in results if not r["ok"]]
    per = []
    group = ("cas", "cas_ok", "read", "granted", "put", "checked_ops")
    for s in args.scenarios:
        mine = [r for r, spec in zip(results, specs, strict=True) if spec.scenario == s]
        row = [s, len(mine), sum(not r["ok"] for r in mine), sum(r["virtual"] for r in mine)]
        if args.consensus_clients:
            row += [sum(r["consensus"].get(k, 0) for r in mine) for k in group]
        per.append(row)
    header = ["scenario", "runs", "failed", "virtual seconds"]
    consensus_text = ""
    if args.consensus_clients:
        header += [
            "cas",
            "cas swapped",
            "linearizable gets",
            "claims granted",
            "puts to decisions",
            "operations through the checker",
        ]
        consensus_text = (
            f" {args.consensus_clients} clients of the consensus group ran beside them "
            "(cas, linearizable get, claim/renew/release, conflicting puts to `decisions`): "
            "their CAS history went through the linearizability checker, claims were checked "
            "never to overlap in virtual time with growing fencing tokens, and every conflict "
            "had to end decided on every node. Raft's safety oracles watched every step of "
            "every node."
        )
    lines = [
        "# Long simulation batch",
        "",
        f"{len(results)} runs ({args.seeds} seeds per scenario from {args.first_seed}, 3 to 9 "
        f"nodes, {args.duration:g} s of faults each, TTL share {args.ttl_share:g}), "
        f"{wall:.0f} s wall with {args.jobs} processes; {len(failed)} failed. Every client "
        "operation went through the node's service layer (put, get, delete, incr, sadd, "
        "srem, vector put, vsearch), with every oracle." + consensus_text,
        "",
        table(header, per),
        "",
    ]
    for r in failed:
        lines += [f"- `{r['command']}`: " + "; ".join(v.splitlines()[0] for v in r["violations"])]
    save_report(args.report, "\n".join(lines))
    log(f"{len(results) - len(failed)}/{len(results)} passed in {wall:.0f} s")


if __name__ == "__main__":
    main()
