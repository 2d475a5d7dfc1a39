"""`python -m swarmnode.chaos`: one chaos run against real node processes.

Exit status 0 when every oracle holds, 1 when one does not (the report ends
with the command that reruns the schedule), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from swarmnode.chaos.nemesis import FAULTS


def _pair(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    try:
        pair = (float(lo), float(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW,HIGH seconds") from None
    if not 0 < pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 < LOW <= HIGH")
    return pair


def _faults(text: str) -> tuple[str, ...]:
    if text in ("", "none"):
        return ()
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m swarmnode.chaos",
        description="Run real swarmnode processes under faults and check what they did.",
    )
    p.add_argument("--nodes", type=int, default=5, help="node processes (default 5)")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault schedule and workload")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load and faults")
    p.add_argument(
        "--nemesis",
        type=_faults,
        default=FAULTS,
        help=f"comma-separated faults, or none (default all: {','.join(FAULTS)})",
    )
    p.add_argument("--clients", type=int, default=6, help="concurrent clients (default 6)")
    p.add_argument("--rate", type=float, default=20.0, help="operations/s per client")
    p.add_argument("--fault-seconds", type=_pair, default=(3.0, 10.0), help="LOW,HIGH")
    p.add_argument("--gap-seconds", type=_pair, default=(2.0, 6.0), help="LOW,HIGH quiet gaps")
    p.add_argument(
        "--converge-timeout", type=float, default=180.0, help="seconds to wait after healing"
    )
    p.add_argument("--node-config", type=Path, help="TOML every node reads (scaled timers)")
    p.add_argument("--profile", choices=["local", "lan"], default="local")
    p.add_argument("--out", type=Path, default=Path("chaos-out"), help="report directory")
    p.add_argument("--loopback", action="store_true", help="no namespaces even as root")
    p.add_argument("--keep", action="store_true", help="keep the nodes' data and logs")
    p.add_argument("--no-plots", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.nodes < 1:
        print("--nodes must be at least 1", file=sys.stderr)
        return 2
    from swarmnode.chaos.run import ChaosOptions, run_chaos

    opts = ChaosOptions(
        nodes=args.nodes,
        seed=args.seed,
        duration=args.duration,
        faults=args.nemesis,
        clients=args.clients,
        rate=args.rate,
        fault_seconds=args.fault_seconds,
        gap_seconds=args.gap_seconds,
        converge_timeout=args.converge_timeout,
        out=args.out,
        profile=args.profile,
        node_config=args.node_config,
        keep=args.keep,
        plots=not args.no_plots,
        loopback=args.loopback,
    )
    try:
        result = run_chaos(opts)
    except KeyboardInterrupt:
        print("interrupted; everything the run made has been removed", file=sys.stderr)
        return 130
    assert result.report_path is not None
    print(result.report_path.read_text())
    print(f"history: {result.history_path}\nreport: {result.report_path}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
