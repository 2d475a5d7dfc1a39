"""What an idle node costs its host: resident memory, CPU and wake-ups (issue 16).

For every source tree given (`--tree NAME=PATH`, default this checkout), start
`--nodes` real `swarmnode run` processes on loopback with the `lan` profile
(the first the seed of the others, one cluster key), all trees at the same
time so the host's load falls on all of them alike. After `--warmup` seconds
(start-up, join, first repair rounds), read /proc for `--duration` seconds
with no client traffic at all:

- RSS: VmRSS at the end (and its largest sample, every 5 s), in MB (10^6 B)
  and MiB; aim at most 60 MB.
- CPU: user + system time over the window, as a share of one core; aim 1%.
- wake-ups: voluntary context switches per second, how often the process
  went to sleep and was woken (timers, datagrams, the writer thread).
- datagrams out per node per second (transport counters, `stats`).

Run: .venv/bin/python benchmarks/idle.py --tree old=/tmp/old --tree new=. \
     [--nodes 1] [--warmup 30] [--duration 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from replication_procs import Node, _read_ready, clean_env, stop_nodes

from swarmnode.client import AsyncClient
from swarmnode.transport import generate_key_file

SAMPLE_EVERY = 5.0
START_TIMEOUT = 120.0


def _status(pid: int) -> dict[str, int]:
    """VmRSS (kB) and context switches from /proc/<pid>/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            out[name] = int(value.split()[0])
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Tree:
    """The nodes started from one source tree."""

    name: str
    code: Path
    base: Path
    nodes: list[Node] = field(default_factory=list)

    def spawn(self, node: Node, seed: str | None) -> None:
        cmd = [sys.executable, "-m", "swarmnode.cli", "run", "--profile", "lan"]
        cmd += ["--data-dir", str(node.data_dir), "--bind", node.bind]
        cmd += ["--cluster-key-file", str(self.base / "cluster.key"), "--log-level", "warning"]
        if seed is not None:
            cmd += ["--join", seed]
        env = clean_env()
        env["PYTHONPATH"] = str(self.code.resolve())
        with open(self.base / f"node{node.index}.log", "ab") as log:
            node.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=self.base,
            )

    def start(self, size: int) -> None:
        generate_key_file(self.base / "cluster.key")
        block = random.randrange(1, 250)
        self.nodes = [
            Node(i, self.base / f"node{i}", f"127.{block}.1.{1 + i}:0") for i in range(size)
        ]
        self.spawn(self.nodes[0], None)
        _read_ready(self.nodes[:1], START_TIMEOUT)
        for node in self.nodes[1:]:
            self.spawn(node, self.nodes[0].gossip)
        _read_ready(self.nodes[1:], START_TIMEOUT)

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes if n.proc is not None]

    async def datagrams_out(self) -> int:
        total = 0
        for node in self.nodes:
            client = AsyncClient(node.socket, timeout=30.0)
            try:
                total += (await client.stats())["transport"]["datagrams_out"]
            finally:
                await client.close()
        return total

    def close(self) -> None:
        stop_nodes(self.nodes, self.base)


@dataclass
class Window:
    rss_kb: list[int] = field(default_factory=list)
    rss_max_kb: list[int] = field(default_factory=list)
    cpu_share: list[float] = field(default_factory=list)
    wakeups_s: list[float] = field(default_factory=list)
    datagrams_s: float = 0.0


async def measure(trees: list[Tree], duration: float) -> dict[str, Window]:
    t0 = time.monotonic()
    cpu0 = {p: _cpu_seconds(p) for t in trees for p in t.pids()}
    st0 = {p: _status(p) for t in trees for p in t.pids()}
    dg0 = {t.name: await t.datagrams_out() for t in trees}
    peak = {p: s["VmRSS"] for p, s in st0.items()}
    while time.monotonic() - t0 < duration:
        await asyncio.sleep(min(SAMPLE_EVERY, duration - (time.monotonic() - t0)))
        for p in peak:
            peak[p] = max(peak[p], _status(p)["VmRSS"])
    elapsed = time.monotonic() - t0
    out = {}
    for t in trees:
        w = Window()
        for p in t.pids():
            st = _status(p)
            w.rss_kb.append(st["VmRSS"])
            w.rss_max_kb.append(peak[p])
            w.cpu_share.append((_cpu_seconds(p) - cpu0[p]) / elapsed)
            woken = st["voluntary_ctxt_switches"] - st0[p]["voluntary_ctxt_switches"]
            w.wakeups_s.append(woken / elapsed)
        w.datagrams_s = (await t.datagrams_out() - dg0[t.name]) / elapsed / len(t.nodes)
        out[t.name] = w
    return out


def report(windows: dict[str, Window], args: argparse.Namespace, load: tuple[float, ...]) -> str:
    med = statistics.median
    rows = [
        "| tree | nodes | RSS end (median node) | RSS peak (worst node) | CPU (median node) "
        "| CPU (worst node) | wake-ups / s | datagrams out / node / s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, w in windows.items():
        rss = med(w.rss_kb) * 1024
        peak = max(w.rss_max_kb) * 1024
        rows.append(
            f"| {name} | {len(w.rss_kb)} | {rss / 1e6:.1f} MB ({rss / 2**20:.1f} MiB) "
            f"| {peak / 1e6:.1f} MB | {med(w.cpu_share):.2%} | {max(w.cpu_share):.2%} "
            f"| {med(w.wakeups_s):.1f} | {w.datagrams_s:.2f} |"
        )
    end = os.getloadavg()
    return (
        f"### Idle node, `lan` profile, {args.nodes} node(s) per tree, "
        f"{args.duration:g} s after a {args.warmup:g} s warm-up (aim: RSS <= 60 MB, "
        "CPU <= 1% of a core)\n\n"
        + "\n".join(rows)
        + f"\n\nHost: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"at start, {end[0]:.2f} {end[1]:.2f} {end[2]:.2f} at the end; trees ran side by side."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tree", action="append", help="NAME=PATH (default: this checkout)")
    p.add_argument("--nodes", type=int, default=1, help="nodes per tree (one cluster each)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring")
    p.add_argument("--duration", type=float, default=600.0, help="seconds measured")
    args = p.parse_args()
    if args.nodes < 1 or args.duration <= 0 or args.warmup < 0:
        p.error("--nodes must be >= 1, --duration > 0 and --warmup >= 0")
    specs = args.tree or [f"current={Path(__file__).resolve().parent.parent}"]
    trees = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not (Path(path) / "swarmnode").is_dir():
            p.error(f"--tree {spec!r}: expected NAME=PATH of a source tree holding swarmnode/")
        base = Path(tempfile.mkdtemp(prefix=f"idle-{name}-", dir="/tmp"))
        trees.append(Tree(name, Path(path), base))
    load = os.getloadavg()
    try:
        for t in trees:
            t.start(args.nodes)
        time.sleep(args.warmup)
        windows = asyncio.run(measure(trees, args.duration))
    finally:
        for t in trees:
            t.close()
    print(report(windows, args, load))


if __name__ == "__main__":
    main()
