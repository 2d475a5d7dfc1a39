"""The node's put and get figures of `local_ops.py`, for several source trees in one run.

Each round starts a node from every tree in turn (fsync on, its own data directory,
1,000 seeded keys) and measures durable puts and gets with 1 client and with
`--clients` concurrent clients, as `local_ops.py` does, with the node process's CPU
time per operation. Rounds interleave the trees, so a slow spell of the host or its
disk falls on all of them; the table gives medians over the rounds. The clients are
this checkout's (the protocol is the same), in this one process.

Run: .venv/bin/python benchmarks/compare_trees.py --tree old=/path/to/old --tree new=.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from local_ops import (
    VALUE,
    Client,
    NodeUnderTest,
    cpu_seconds,
    filesystem_of,
    many_clients,
    one_client,
)


def measure_tree(code: Path, args: argparse.Namespace, r: int) -> dict[str, tuple[float, float]]:
    """(ops/s, node CPU µs/op) of each measurement, one node from `code`."""
    clients = args.clients
    each_put, each_get = max(1, args.puts // clients), max(1, args.gets // clients)
    node = NodeUnderTest(args.dir, code)
    out: dict[str, tuple[float, float]] = {}
    try:
        with Client(node.socket) as c:
            for i in range(1000):
                c.put("default", f"seed/{i}", VALUE)
        one_put, one_get = args.puts // 4, args.gets // 4
        for name, measure, ops in (
            ("put, 1 client", lambda: one_client(node, "put", f"p1/{r}", one_put), one_put),
            (
                f"put, {clients} clients",
                lambda: many_clients(node, "put", f"p50/{r}", clients, each_put),
                clients * each_put,
            ),
            ("get, 1 client", lambda: one_client(node, "get", "", one_get), one_get),
            (
                f"get, {clients} clients",
                lambda: many_clients(node, "get", "", clients, each_get),
                clients * each_get,
            ),
        ):
            cpu = cpu_seconds(node.proc.pid)
            rate = measure()
            out[name] = (rate, (cpu_seconds(node.proc.pid) - cpu) / ops * 1e6)
    finally:
        node.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where data lives")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--puts", type=int, default=2000, help="per run and tree")
    parser.add_argument("--gets", type=int, default=20000, help="per run and tree")
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    trees = [(name, Path(path)) for name, path in (t.split("=", 1) for t in args.tree)]
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    cpus: dict[tuple[str, str], list[float]] = defaultdict(list)
    names: list[str] = []
    started, load_before = time.time(), os.getloadavg()[0]
    for r in range(args.runs):
        for tree, code in trees:
            for name, (rate, cpu) in measure_tree(code, args, r).items():
                rates[tree, name].append(rate)
                cpus[tree, name].append(cpu)
                if name not in names:
                    names.append(name)
    print(f"Data directory: {args.dir.resolve()} ({filesystem_of(args.dir)})")
    print(
        f"Host: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {load_before:.2f} before and "
        f"{os.getloadavg()[0]:.2f} after; {args.runs} rounds in {time.time() - started:.0f} s, "
        "trees interleaved; medians."
    )
    print()
    print(
        "| measurement | "
        + " | ".join(f"{t} ops/s" for t, _ in trees)
        + " | "
        + " | ".join(f"{t} node CPU µs/op" for t, _ in trees)
        + " |"
    )
    print("|---|" + "---:|" * (2 * len(trees)))
    for name in names:
        med_rate = [statistics.median(rates[t, name]) for t, _ in trees]
        med_cpu = [statistics.median(cpus[t, name]) for t, _ in trees]
        print(
            f"| {name} | "
            + " | ".join(f"{x:,.0f}" for x in med_rate)
            + " | "
            + " | ".join(f"{x:,.0f}" for x in med_cpu)
            + " |"
        )
    print()
    print("Every round (ops/s; node CPU µs/op):")
    print()
    for name in names:
        for tree, _ in trees:
            runs = ", ".join(
                f"{x:,.0f} ({c:,.0f})"
                for x, c in zip(rates[tree, name], cpus[tree, name], strict=True)
            )
            print(f"- {name}, {tree}: {runs}")


if __name__ == "__main__":
    main()
