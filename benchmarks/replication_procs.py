"""Real `swarmnode run` processes for the replication benchmark, and what they cost the host.

A `ProcCluster` starts N nodes at once (each on its own loopback address, the
first one the seed of all others, all sealing gossip with one cluster key as a
real deployment would, so byte counts include the 33-byte envelopes), waits
for their ready lines and for every node to see every other alive, and can
SIGKILL a node and start it again on the same data and address. `CpuMeter`
reads /proc to say how busy the whole machine and the node processes were
during a measurement, because 25 Python processes on 2 cores measure the
scheduler as much as the protocol.
"""

from __future__ import annotations

import asyncio
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmnode.client import AsyncClient
from swarmnode.transport import generate_key_file

READY_PREFIX = "swarmnode ready: node "
START_TIMEOUT = 120.0
"""Seconds for all nodes to print their ready line; 25 imports on 2 cores take a while."""
ALIVE_TIMEOUT = 120.0
POLL = 0.05


def swarmnode_command() -> list[str]:
    script = Path(sys.executable).parent / "swarmnode"
    return [str(script)] if script.exists() else [sys.executable, "-m", "swarmnode.cli"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")}


@dataclass
class Node:
    index: int
    data_dir: Path
    bind: str
    proc: subprocess.Popen[bytes] | None = None
    node_id: str = ""
    gossip: str = ""
    socket: Path = Path()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _read_ready(nodes: list[Node], timeout: float) -> None:
    """Wait for every node's ready line; RuntimeError with the log of one that failed."""
    sel = selectors.DefaultSelector()
    buffers: dict[int, bytes] = {}
    for node in nodes:
        assert node.proc is not None and node.proc.stdout is not None
        sel.register(node.proc.stdout, selectors.EVENT_READ, node)
        buffers[node.index] = b""
    deadline = time.monotonic() + timeout
    waiting = len(nodes)
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{waiting} node(s) not ready after {timeout:g}s")
        for key, _ in sel.select(left):
            node: Node = key.data
            chunk = os.read(key.fd, 4096)
            if not chunk:
                log = (node.data_dir.parent / f"node{node.index}.log").read_text()[-2000:]
                raise RuntimeError(f"node {node.index} exited before ready:\n{log}")
            buffers[node.index] += chunk
            if b"\n" in buffers[node.index]:
                line = buffers[node.index].split(b"\n", 1)[0].decode()
                if not line.startswith(READY_PREFIX):
                    raise RuntimeError(f"node {node.index} printed {line!r}")
                node_id, _, gossip, _, sock = line[len(READY_PREFIX) :].split()
                node.node_id, node.gossip, node.socket = node_id, gossip, Path(sock)
                node.bind = gossip
                sel.unregister(key.fileobj)
                waiting -= 1
    sel.close()


def stop_nodes(nodes: list[Node], base: Path) -> None:
    """SIGTERM every running node, wait for each (SIGKILL after 30 s), then remove `base`."""
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
    for node in nodes:
        if node.proc is None:
            continue
        try:
            node.proc.wait(30)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()
        if node.proc.stdout is not None:
            node.proc.stdout.close()
    shutil.rmtree(base, ignore_errors=True)


@dataclass
class ProcCluster:
    """N nodes on loopback: `await ProcCluster.start(n, profile)`; `close()` stops them."""

    base: Path
    profile: str
    args: list[str]
    nodes: list[Node] = field(default_factory=list)
    _clients: dict[int, AsyncClient] = field(default_factory=dict)

    @classmethod
    async def start(cls, size: int, profile: str, config: str | None = None) -> ProcCluster:
        base = Path(tempfile.mkdtemp(prefix="snb-", dir="/tmp"))
        args: list[str] = []
        if config is not None:
            (base / "node.toml").write_text(config)
            args = ["--config", str(base / "node.toml")]
        generate_key_file(base / "cluster.key")
        args += ["--cluster-key-file", str(base / "cluster.key")]
        cluster = cls(base, profile, args)
        block = random.randrange(1, 250)
        cluster.nodes = [
            Node(i, base / f"node{i}", f"127.{block}.{1 + i // 250}.{1 + i % 250}:0")
            for i in range(size)
        ]
        try:
            cluster._spawn(cluster.nodes[0], seed=None)
            _read_ready(cluster.nodes[:1], START_TIMEOUT)
            for node in cluster.nodes[1:]:
                cluster._spawn(node, seed=cluster.nodes[0].gossip)
            _read_ready(cluster.nodes[1:], START_TIMEOUT)
            await cluster.wait_all_alive()
        except BaseException:
            await cluster.close()
            raise
        return cluster

    def _spawn(self, node: Node, seed: str | None) -> None:
        cmd = [*swarmnode_command(), "run", "--profile", self.profile]
        cmd += ["--data-dir", str(node.data_dir), "--bind", node.bind, *self.args]
        if seed is not None:
            cmd += ["--join", seed]
        with open(self.base / f"node{node.index}.log", "ab") as log:
            node.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=clean_env()
            )

    def __len__(self) -> int:
        return len(self.nodes)

    def client(self, i: int) -> AsyncClient:
        if i not in self._clients:
            self._clients[i] = AsyncClient(self.nodes[i].socket, timeout=120.0)
        return self._clients[i]

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes if n.proc is not None and n.alive]

    async def member_states(self, i: int) -> dict[str, str]:
        reply = await self.client(i).members()
        return {m["node_id"]: m["state"] for m in reply["members"]}

    async def wait_all_alive(self, timeout: float = ALIVE_TIMEOUT) -> None:
        ids = {n.node_id for n in self.nodes}
        deadline = time.monotonic() + timeout
        while True:
            views = await asyncio.gather(*(self.member_states(i) for i in range(len(self))))
            if all(set(v) >= ids and all(v[n] == "alive" for n in ids) for v in views):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster of {len(self)} not all alive after {timeout:g}s")
            await asyncio.sleep(POLL)

    async def stats(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self.client(i).stats() for i in range(len(self)))))

    async def kill(self, i: int) -> None:
        node = self.nodes[i]
        client = self._clients.pop(i, None)
        if client is not None:
            await client.close()
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()

    async def restart(self, i: int) -> None:
        """Start node i again on its data dir and address, joined to another node."""
        node = self.nodes[i]
        if node.proc is not None and node.proc.stdout is not None:
            node.proc.stdout.close()
        self._spawn(node, seed=self.nodes[0 if i else 1].gossip)
        _read_ready([node], START_TIMEOUT)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        stop_nodes(self.nodes, self.base)


def _proc_cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """How busy the machine and a set of processes were between `start()` and `stop()`."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._hz = os.sysconf("SC_CLK_TCK")
        self._t0 = time.monotonic()
        self._procs0 = sum(_proc_cpu_ticks(p) for p in pids)
        self._machine0 = _machine_ticks()

    def stop(self) -> dict[str, float]:
        """machine_busy: share of all cores busy (any process); nodes_cores: cores the
        node processes used on average; load1: the 1-minute load average now."""
        elapsed = max(1e-9, time.monotonic() - self._t0)
        busy, total = _machine_ticks()
        procs = sum(_proc_cpu_ticks(p) for p in self.pids) - self._procs0
        busy0, total0 = self._machine0
        return {
            "machine_busy": (busy - busy0) / max(1, total - total0),
            "nodes_cores": procs / self._hz / elapsed,
            "load1": os.getloadavg()[0],
        }
