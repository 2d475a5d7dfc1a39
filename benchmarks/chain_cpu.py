"""Node CPU per operation of several code trees, in interleaved rounds.

For a change on the request path (the service chain): each round starts one
`swarmnode run` per tree (fsync on), seeds it, drives durable puts and gets
from `--clients` concurrent clients over the Unix socket, and reads the node
process's CPU time (user + system, /proc) around each; the trees take turns
inside every round, and swap who goes first from round to round, so a noisy
spell of the shared host hits them alike. The
table shows medians over rounds, and the load average when it ran.

Run: .venv/bin/python benchmarks/chain_cpu.py --tree before=/path/to/old --tree after=. \\
    [--rounds 5] [--puts 2000] [--gets 20000] [--clients 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

from local_ops import VALUE, NodeUnderTest, cpu_seconds, many_clients

from swarmnode.client import Client


def one_round(
    tree: Path, directory: Path, clients: int, puts: int, gets: int, tag: str
) -> dict[str, tuple[float, float]]:
    """(ops/s, node CPU µs per op) of durable put and get, on a fresh node of `tree`."""
    node = NodeUnderTest(directory, code=tree)
    try:
        with Client(node.socket) as c:
            for i in range(1000):
                c.put("default", f"seed/{i}", VALUE)
        many_clients(node, "get", "", clients, 20)  # warm: connections, caches
        out = {}
        for op, count in (("put", puts), ("get", gets)):
            each = max(1, count // clients)
            before = cpu_seconds(node.proc.pid)
            rate = many_clients(node, op, tag, clients, each)
            used = cpu_seconds(node.proc.pid) - before
            out[op] = (rate, used / (clients * each) * 1e6)
        return out
    finally:
        node.close()


def interleaved(
    trees: list[tuple[str, Path]], directory: Path, clients: int, rounds: int, puts: int, gets: int
) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], list[float]], list[float]]:
    """Node CPU µs and ops/s per (tree, op) over `rounds` rounds, the trees alternating inside
    every round and swapping who goes first, so a noisy spell of the shared host hits them
    alike; and the load average after each round."""
    cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    loads = []
    for r in range(rounds):
        for name, path in trees if r % 2 == 0 else reversed(trees):
            for op, (rate, us) in one_round(path, directory, clients, puts, gets, f"r{r}").items():
                rates[name, op].append(rate)
                cpu[name, op].append(us)
        loads.append(os.getloadavg()[0])
    return cpu, rates, loads


def table(
    trees: list[tuple[str, Path]],
    cpu: dict[tuple[str, str], list[float]],
    rates: dict[tuple[str, str], list[float]],
) -> list[str]:
    """The Markdown table of `interleaved`'s figures, each tree beside the first."""
    first = trees[0][0]
    out = [
        f"| code | op | node CPU µs/op | vs {first} | rounds (µs/op) | ops/s |",
        "|---|---|---:|---:|---|---:|",
    ]
    for op in ("put", "get"):
        base = statistics.median(cpu[first, op])
        for name, _ in trees:
            us = statistics.median(cpu[name, op])
            spread = ", ".join(f"{x:.1f}" for x in cpu[name, op])
            rate = statistics.median(rates[name, op])
            out.append(f"| {name} | {op} | {us:.1f} | {us / base:.2f}x | {spread} | {rate:,.0f} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--puts", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    trees = [(name, Path(path)) for name, path in (t.split("=", 1) for t in args.tree)]
    cpu, rates, loads = interleaved(
        trees, args.dir, args.clients, args.rounds, args.puts, args.gets
    )
    print(
        f"{args.clients} clients, {args.rounds} interleaved rounds, medians; load average "
        f"(1 min) after each round: {', '.join(f'{x:.1f}' for x in loads)}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    print()
    print("\n".join(table(trees, cpu, rates)))


if __name__ == "__main__":
    main()
