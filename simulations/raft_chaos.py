"""The long seed sweep of the Raft group under random faults (CI runs 50 short seeds).

Each run (see `swarmnode/consensus/chaos.py`) forms a group, runs clients that
claim keys with leases, move CAS counters, read through ReadIndex and decide
conflicts, while a nemesis crashes and restarts nodes, partitions, isolates
(the leader too), flaps links, drops and duplicates messages. Raft's safety
properties (Election Safety, Leader Append-Only, Log Matching, Leader
Completeness, State Machine Safety, durable term and vote, commit never going
back) and the clients' histories (one holder per key at any instant, growing
fencing tokens, no lost CAS update, no stale read, one winner per decision)
are checked after every step; after the faults the group must converge, and
the run's CAS history (every CAS and ReadIndex read) must pass the
linearizability checker (`swarmnode check`).

Plans: 5 voters in memory; 3 voters whose writes take 1.5 ms to become
durable (messages arrive while a Ready is being written); 5 voters and 2
learners with the voter policy running and one voter crashed for good (it
must be replaced); 3 voters on LMDB with crashes.

    python simulations/raft_chaos.py                  # 200 seeds per plan
    python simulations/raft_chaos.py --seeds 20 --fault-ms 4000
"""

from __future__ import annotations

import argparse
import time

from common import log, save_json, save_report, table

from swarmnode.consensus.chaos import ChaosOptions, ChaosResult, sweep

NAME = "raft_chaos"


def plans(fault_ms: float) -> dict[str, ChaosOptions]:
    return {
        "5 voters": ChaosOptions(nodes=5, fault_ms=fault_ms),
        "3 voters, 1.5 ms durable writes": ChaosOptions(nodes=3, disk_ms=1.5, fault_ms=fault_ms),
        "5 voters + 2 learners, voter policy, one voter lost": ChaosOptions(
            nodes=5, learners=2, autopilot=True, permanent_crash=True, fault_ms=fault_ms
        ),
        "3 voters on LMDB": ChaosOptions(nodes=3, storage="lmdb", disk_ms=0.5, fault_ms=fault_ms),
    }


class Progress:
    """Logs failures at once, with their replay command, and a line every 20 seeds."""

    def __init__(self, name: str, options: ChaosOptions, seeds: int, started: float) -> None:
        self.name, self.options, self.seeds, self.started = name, options, seeds, started
        self.done = 0

    def __call__(self, result: ChaosResult) -> None:
        self.done += 1
        if not result.ok:
            log(f"{self.name}: seed {result.seed} FAILED: {result.error}")
            log(f"  replay: {result.replay(self.options)}")
        if self.done % 20 == 0:
            elapsed = time.perf_counter() - self.started
            log(f"{self.name}: {self.done}/{self.seeds} seeds, {elapsed:.0f} s")


HEADER = [
    "plan",
    "runs",
    "failed",
    "simulated s",
    "wall s",
    "proposals",
    "claim holds checked",
    "linearizable reads checked",
    "CAS/read operations through the checker",
    "messages",
    "steps checked",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="seeds per plan")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--fault-ms", type=float, default=6_000.0)
    args = parser.parse_args()
    started = time.perf_counter()
    summary = []
    failures: list[dict] = []
    for name, options in plans(args.fault_ms).items():
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        results = sweep(seeds, options, Progress(name, options, args.seeds, started))
        bad = [r for r in results if not r.ok]
        failures += [
            {"plan": name, "seed": r.seed, "error": r.error, "replay": r.replay(options)}
            for r in bad
        ]
        total = {
            key: sum(r.counts.get(key, 0) for r in results)
            for key in (
                "proposed",
                "claims_checked",
                "reads",
                "cas_ok",
                "decide",
                "checked_ops",
                "sent",
                "oracle_steps",
            )
        }
        summary.append(
            {
                "plan": name,
                "runs": len(results),
                "failed": len(bad),
                "simulated_s": sum(r.sim_ms for r in results) / 1000.0,
                "wall_s": sum(r.wall_s for r in results),
                **total,
            }
        )
    save_json(
        NAME,
        {"seeds": args.seeds, "fault_ms": args.fault_ms, "plans": summary, "failures": failures},
    )
    rows = [
        [
            s["plan"],
            s["runs"],
            s["failed"],
            f"{s['simulated_s']:.0f}",
            f"{s['wall_s']:.0f}",
            s["proposed"],
            s["claims_checked"],
            s["reads"],
            s["checked_ops"],
            s["sent"],
            s["oracle_steps"],
        ]
        for s in summary
    ]
    failed_text = (
        "\n".join(
            f"- {f['plan']}, seed {f['seed']}: {f['error']}\n  `{f['replay']}`" for f in failures
        )
        or "None."
    )
    command = (
        f"python simulations/raft_chaos.py --seeds {args.seeds} "
        f"--first-seed {args.first_seed} --fault-ms {args.fault_ms:.0f}"
    )
    save_report(
        NAME,
        f"""# Raft under random faults: the long sweep

`{command}`, {time.perf_counter() - started:.0f} s of wall time on a shared 2-core machine.

Every run checks Raft's safety properties and the clients' histories after every step
(see the module docstring of `simulations/raft_chaos.py`), then requires the group to
converge (one leader, everything applied everywhere, identical state machines, a new
proposal commits) once the faults stop, and runs the linearizability checker on the
run's CAS history (every CAS and ReadIndex read the clients saw; a run fails if the
verdict is not `linearizable`).

{table(HEADER, rows)}

## Failures

{failed_text}
""",
    )
    log(f"done in {time.perf_counter() - started:.0f} s; {len(failures)} failures")


if __name__ == "__main__":
    main()
