"""Command line: run one seed, or a batch of seeds, and print the replay line of each failure.

python -m swarmnode.sim --scenario partition --seed 1234 --nodes 10
python -m swarmnode.sim --scenario mixed --seed 1 --seeds 200 --nodes 7
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

from swarmnode.sim.nemesis import SCENARIOS
from swarmnode.sim.run import RunResult, RunSpec, run


def _parser() -> argparse.ArgumentParser:
    defaults = RunSpec()
    p = argparse.ArgumentParser(prog="python -m swarmnode.sim", description=__doc__.split("\n")[0])
    p.add_argument("--scenario", default=defaults.scenario, choices=sorted(SCENARIOS))
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed on")
    p.add_argument("--nodes", type=int, default=defaults.nodes)
    p.add_argument("--profile", default=defaults.profile, choices=("local", "lan"))
    p.add_argument("--duration", type=float, default=defaults.duration)
    p.add_argument("--warmup", type=float, default=defaults.warmup)
    p.add_argument("--rate", type=float, default=defaults.rate)
    p.add_argument("--latency", type=float, default=defaults.latency)
    p.add_argument("--ttl-share", type=float, default=defaults.ttl_share)
    p.add_argument(
        "--consensus-clients",
        type=int,
        default=defaults.consensus_clients,
        help="clients of the consensus group (cas, linearizable get, claims, conflicts)",
    )
    p.add_argument("--tick-mode", default=defaults.tick_mode, choices=("interval", "deadline"))
    p.add_argument(
        "--history",
        metavar="FILE",
        help="write the consensus clients' CAS history (JSONL, for `swarmnode check`); "
        "with several seeds, FILE gets the seed before its suffix",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print the fault log and history")
    return p


def _report(result: RunResult, verbose: bool) -> None:
    print(result.summary(), flush=True)
    if verbose or not result.ok:
        for line in result.nemesis_log:
            print(f"  nemesis {line}")
    if verbose:
        for line in result.history.lines():
            print(f"  op {line}")
    if not result.ok:
        for v in result.violations[:20]:
            print(f"  violation: {v}")
        if len(result.violations) > 20:
            print(f"  ... and {len(result.violations) - 20} more")
        print(f"  replay: {result.spec.command()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = {f.name for f in fields(RunSpec)}
    base = {k: v for k, v in vars(args).items() if k in names}
    failed = 0
    for seed in range(args.seed, args.seed + args.seeds):
        result = run(RunSpec(**{**base, "seed": seed}))
        _report(result, args.verbose)
        if args.history and result.consensus_history:
            path = Path(args.history)
            if args.seeds > 1:
                path = path.with_name(f"{path.stem}.{seed}{path.suffix}")
            path.write_text("".join(line + "\n" for line in result.consensus_history))
            print(f"  history: {path} (swarmnode check {path})")
        failed += not result.ok
    if args.seeds > 1:
        print(f"{args.seeds - failed}/{args.seeds} seeds passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
