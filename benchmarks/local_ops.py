"""Durable put and get throughput of one node through its Unix socket, beside raw LMDB.

Everything runs in one invocation on the same disk so the figures are ratios
of each other, not absolute claims:

- raw LMDB, one write transaction (and so one fsync) per put: the rate a
  store that acknowledges each write durably on its own can reach;
- raw LMDB, puts batched into transactions of 50 and of 1000: the ceiling
  that sharing a commit can approach;
- a real `swarmnode run` process (fsync on, as in production), driven by 1
  blocking client and by 50 concurrent asyncio clients on their own
  connections, each waiting for its acknowledgement before the next put.

Every measurement runs `--runs` times, in interleaved rounds; the table shows
medians. The data directory decides what fsync costs (tmpfs makes it free), so
the script says where it ran. The last column is CPU time per operation of the
node process and of this (client) process: on a small host they compete for the
same cores, so it shows which side bounds a figure. The issue's aims: with 50
clients, durable puts at least 10x raw LMDB's one-fsync-per-put rate, and gets
at 30,000/s or more.

Run: .venv/bin/python benchmarks/local_ops.py [--dir /var/tmp] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lmdb
import msgpack
import uvloop

from swarmnode.client import AsyncClient, Client

VALUE = {"agent": "agent-7", "state": "working", "payload": "x" * 64}
"""A small agent-memory record, about 100 bytes packed."""


def filesystem_of(path: Path) -> str:
    """'<fstype> on <device>' of the mount holding `path`, from /proc/mounts."""
    best, found = "", "unknown filesystem"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    resolved = str(path.resolve())
    for line in lines:
        device, mount, fstype = line.split()[:3]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, found = mount, f"{fstype} on {device} (mounted at {mount})"
    return found


# --- raw LMDB ----------------------------------------------------------------------------


def raw_lmdb_puts(directory: Path, puts: int, batch: int) -> float:
    """Puts per second into a fresh LMDB environment, `batch` puts per fsynced transaction."""
    path = Path(tempfile.mkdtemp(prefix="raw-", dir=directory))
    env = lmdb.open(str(path), map_size=1 << 30, sync=True, metasync=True)
    value = msgpack.packb(VALUE)
    try:
        started = time.perf_counter()
        for first in range(0, puts, batch):
            with env.begin(write=True) as txn:
                for i in range(first, min(first + batch, puts)):
                    txn.put(f"default\x00bench/{i}".encode(), value)
        return puts / (time.perf_counter() - started)
    finally:
        env.close()
        shutil.rmtree(path, ignore_errors=True)


# --- the node ----------------------------------------------------------------------------


class NodeUnderTest:
    """A `swarmnode run` process with its own data directory, fsync on."""

    def __init__(self, directory: Path, code: Path | None = None) -> None:
        """`code`: run the node from that source tree (PYTHONPATH) instead of this one."""
        self.base = Path(tempfile.mkdtemp(prefix="node-", dir=directory))
        script = Path(sys.executable).parent / "swarmnode"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "swarmnode.cli"]
        cmd += ["run", "--data-dir", str(self.base / "data"), "--bind", "127.0.0.1:0"]
        cmd += ["--log-level", "warning"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")}
        if code is not None:
            env.update(PYTHONPATH=str(code.resolve()), PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("swarmnode ready:"):
            self.close()
            raise SystemExit(f"the node did not start: {line!r}")
        self.socket = Path(line.split(" socket ", 1)[1].strip())

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)


def one_client(node: NodeUnderTest, op: str, tag: str, count: int) -> float:
    with Client(node.socket) as c:
        started = time.perf_counter()
        for i in range(count):
            if op == "put":
                c.put("default", f"{tag}/{i}", VALUE)
            else:
                c.get("default", f"seed/{i % 1000}")
        return count / (time.perf_counter() - started)


def many_clients(node: NodeUnderTest, op: str, tag: str, clients: int, each: int) -> float:
    async def run() -> float:
        conns = [await AsyncClient(node.socket).connect() for _ in range(clients)]

        async def work(n: int, c: AsyncClient) -> None:
            for i in range(each):
                if op == "put":
                    await c.put("default", f"{tag}/{n}/{i}", VALUE)
                else:
                    await c.get("default", f"seed/{(n * each + i) % 1000}")

        started = time.perf_counter()
        await asyncio.gather(*(work(n, c) for n, c in enumerate(conns)))
        elapsed = time.perf_counter() - started
        for c in conns:
            await c.close()
        return clients * each / elapsed

    return uvloop.run(run())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc (0.0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer_stats(node: NodeUnderTest) -> dict[str, int]:
    with Client(node.socket) as c:
        return c.stats()["writer"]


# --- the report ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where data lives")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--raw-puts", type=int, default=500, help="per run, 1 fsync per put")
    parser.add_argument("--puts", type=int, default=2000, help="per run, through the node")
    parser.add_argument("--gets", type=int, default=20000, help="per run, through the node")
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    runs, clients = args.runs, args.clients
    raw1_name = "raw LMDB put, 1 txn + fsync per put"
    each_put, each_get = max(1, args.puts // clients), max(1, args.gets // clients)

    samples: dict[str, list[float]] = defaultdict(list)
    node_cpu_us: dict[str, list[float]] = defaultdict(list)
    client_cpu_us: dict[str, list[float]] = defaultdict(list)
    node = NodeUnderTest(args.dir)
    try:
        with Client(node.socket) as c:
            for i in range(1000):
                c.put("default", f"seed/{i}", VALUE)
        # One round measures everything once; rounds interleave so that a noisy
        # spell of the disk (fsync cost on shared hosts varies tenfold) hits
        # the raw and the node figures alike.
        for r in range(runs):
            samples[raw1_name].append(raw_lmdb_puts(args.dir, args.raw_puts, 1))
            for batch in (50, 1000):
                name = f"raw LMDB put, {batch} puts per txn + fsync"
                samples[name].append(raw_lmdb_puts(args.dir, 20 * batch, batch))
            before = writer_stats(node)
            for name, measure, ops in (
                (
                    "node durable put, 1 client",
                    lambda r=r: one_client(node, "put", f"p1/{r}", args.puts // 4),
                    args.puts // 4,
                ),
                (
                    f"node durable put, {clients} clients",
                    lambda r=r: many_clients(node, "put", f"p50/{r}", clients, each_put),
                    clients * each_put,
                ),
                (
                    "node get, 1 client",
                    lambda: one_client(node, "get", "", args.gets // 4),
                    args.gets // 4,
                ),
                (
                    f"node get, {clients} clients",
                    lambda: many_clients(node, "get", "", clients, each_get),
                    clients * each_get,
                ),
            ):
                cpu, mine = cpu_seconds(node.proc.pid), time.process_time()
                samples[name].append(measure())
                node_cpu_us[name].append((cpu_seconds(node.proc.pid) - cpu) / ops * 1e6)
                client_cpu_us[name].append((time.process_time() - mine) / ops * 1e6)
                if name == "node durable put, 1 client":
                    mid = writer_stats(node)
                elif name.startswith("node durable put"):
                    after = writer_stats(node)
    finally:
        node.close()
    raw1 = statistics.median(samples[raw1_name])

    print(f"Data directory: {args.dir.resolve()} ({filesystem_of(args.dir)})")
    print(
        f"Host: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, LMDB {'.'.join(map(str, lmdb.version()))}; "
        f"medians of {runs} runs; clients run in this one Python process."
    )
    print()
    print(
        "| measurement | ops/s (median) | runs (ops/s) | vs raw 1-fsync-per-put "
        "| CPU µs/op node / clients |"
    )
    print("|---|---:|---|---:|---:|")
    for name, values in samples.items():
        value = statistics.median(values)
        spread = ", ".join(f"{x:,.0f}" for x in values)
        cpu = ""
        if name in node_cpu_us:
            node_us = statistics.median(node_cpu_us[name])
            cpu = f"{node_us:,.0f} / {statistics.median(client_cpu_us[name]):,.0f}"
        print(f"| {name} | {value:,.0f} | {spread} | {value / raw1:.1f}x | {cpu} |")
    one = mid["ops"] - before["ops"], mid["batches"] - before["batches"]
    many = after["ops"] - mid["ops"], after["batches"] - mid["batches"]
    print()
    print(
        f"Group commit in the last round: 1 client, {one[0]} writes in {one[1]} commits; "
        f"{clients} clients, {many[0]} writes in {many[1]} commits "
        f"({many[0] / max(1, many[1]):.1f} writes per fsync; largest batch "
        f"{after['max_batch']})."
    )


if __name__ == "__main__":
    main()
