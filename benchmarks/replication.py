"""Replication figures of real node processes on loopback, each beside its anchor (issue 4).

Four measurements, each on fresh `swarmnode run` processes (see replication_procs.py):

1. Propagation: one write at a time on a random node of N (3, 10, 25), stamped
   by `watch` streams open on every node; the figure is the time from sending
   the `put` until the last node's watch reported the key (so it includes the
   writer's own durable commit and every hop's). p50 and p99 of each run,
   median over runs. Anchor: Serf's convergence model, fanout 3 and a 200 ms
   gossip interval, 99.99% of 30 nodes reached in 1.8 s.
2. Traffic: transport counters (`stats`) of all nodes over an idle window (no
   writes) and over the write phase; the write phase minus the idle rate,
   divided by writes and nodes, is the cost of one write per node.
3. Failure detection: SIGKILL a random node of a `lan` cluster and poll
   `members` on every other node until it reports the victim dead. Anchor:
   memberlist's LAN defaults, 1 s probe interval plus 4 s suspicion for up to
   10 nodes. Meanwhile `--busy` processes spin on the CPU (a busy loop each),
   and false alarms are counted: live nodes any observer saw suspect, or dead,
   while polling, and every refutation (a live node raising its incarnation
   to answer a suspicion of itself, `stats` incarnation) from just before the
   kill until the victim is back and the cluster settled.
4. Anti-entropy bytes between two real nodes holding the same 100,000 keys
   except 1 or 10, as reported by `sync`, beside a full transfer. The nodes run
   with gossip off (`[dissemination] enabled = false`) and no periodic rounds
   (`[antientropy] interval` of years), so the differences stay put until
   `sync` repairs them; a node restarted after missing writes would repair
   them by itself at join, before `sync` could measure anything.

Run: .venv/bin/python benchmarks/replication.py [--sections propagation detection antientropy pace]
     [--sizes 3 10 25] [--profiles lan local] [--runs 3] [--writes 100] ...
Prints Markdown tables. Every table says how busy the host was: 25 nodes on
2 cores measure the scheduler too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replication_procs import CpuMeter, ProcCluster

from swarmnode.client import AsyncClient
from swarmnode.errors import NotFound

NS = "bench"
WRITE_TIMEOUT = 10.0
"""Seconds a write may take to reach every node before it counts as not delivered."""
SETTLE = 3.0
"""Seconds after the cluster formed before measuring: join-time repair rounds finish."""
TRAFFIC_KEYS = ("datagrams_out", "bytes_out", "stream_messages_out", "stream_bytes_out")

SERF_ANCHOR = "Serf model (fanout 3, 200 ms): 99.99% of 30 nodes in 1.8 s"
MEMBERLIST_ANCHOR = "memberlist LAN: 1 s probe + 4 s suspicion (n <= 10)"
AE_CONFIG = """
[dissemination]
enabled = false
[antientropy]
interval = 1.0e9
"""
IN_MEMORY_1M = (
    "benchmarks/antientropy_bytes.py (two in-memory replicas, 100-byte states, one round): "
    "1 key changed among 1,000,000: 2,061 digest + 313 state bytes; 10 keys: 15,553 + 2,545; "
    "full transfer 117,000,000 bytes. Among 100,000: 2,063 + 313 and 14,782 + 2,545 "
    "(full 11,700,000)."
)


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    marks = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def traffic(stats: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for s in stats:
        for k in TRAFFIC_KEYS:
            out[k] += s["transport"][k]
        out["gossip_messages"] += s["dissemination"]["messages_sent"]
    return out


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


async def wait_drained(cluster: ProcCluster, timeout: float = 30.0) -> None:
    """Until no node has deltas left to retransmit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s["dissemination"]["pending"] == 0 for s in await cluster.stats()):
            return
        await asyncio.sleep(0.1)


# --- 1 and 2: propagation and traffic ------------------------------------------


@dataclass
class PropagationRun:
    profile: str
    size: int
    all_nodes: list[float] = field(default_factory=list)
    """Per write: seconds from sending the put to the last node's watch event."""
    acks: list[float] = field(default_factory=list)
    lost: int = 0
    idle_bytes_per_node_s: float = 0.0
    idle_datagrams_per_node_s: float = 0.0
    datagrams_per_write_node: float = 0.0
    bytes_per_write_node: float = 0.0
    stream_bytes_per_write_node: float = 0.0
    messages_per_write_node: float = 0.0
    write_rate: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)


async def _watch(
    cluster: ProcCluster,
    i: int,
    arrivals: dict[str, dict[int, float]],
    complete: dict[str, asyncio.Event],
    started: asyncio.Event,
) -> None:
    stream = AsyncClient(cluster.nodes[i].socket).stream("watch", ns=NS, values=False)
    await stream.start()
    started.set()
    try:
        async for event in stream:
            now = time.perf_counter()
            seen = arrivals[event["key"]]
            seen.setdefault(i, now)
            if len(seen) == len(cluster) and event["key"] in complete:
                complete[event["key"]].set()
    finally:
        await stream.aclose()


async def propagation_run(
    profile: str,
    size: int,
    writes: int,
    idle: float,
    gap: float,
    rng: random.Random,
    config: str | None = None,
) -> PropagationRun:
    run = PropagationRun(profile, size)
    cluster = await ProcCluster.start(size, profile, config)
    watchers: list[asyncio.Task[None]] = []
    try:
        await asyncio.sleep(SETTLE)
        await wait_drained(cluster)
        t0, before = time.monotonic(), traffic(await cluster.stats())
        await asyncio.sleep(idle)
        idle_s, idle_traffic = time.monotonic() - t0, diff(traffic(await cluster.stats()), before)
        run.idle_bytes_per_node_s = idle_traffic["bytes_out"] / idle_s / size
        run.idle_datagrams_per_node_s = idle_traffic["datagrams_out"] / idle_s / size

        arrivals: dict[str, dict[int, float]] = defaultdict(dict)
        complete: dict[str, asyncio.Event] = {}
        for i in range(size):
            started = asyncio.Event()
            watchers.append(asyncio.create_task(_watch(cluster, i, arrivals, complete, started)))
            await started.wait()

        cpu = CpuMeter(cluster.pids())
        t0, before = time.monotonic(), traffic(await cluster.stats())
        for w in range(writes):
            key = f"w{w}"
            complete[key] = asyncio.Event()
            writer = rng.randrange(size)
            sent = time.perf_counter()
            await cluster.client(writer).put(NS, key, w)
            run.acks.append(time.perf_counter() - sent)
            try:
                await asyncio.wait_for(complete[key].wait(), WRITE_TIMEOUT)
                run.all_nodes.append(max(arrivals[key].values()) - sent)
            except TimeoutError:
                run.lost += 1
            await asyncio.sleep(gap)
        await wait_drained(cluster)
        elapsed = time.monotonic() - t0
        run.cpu = cpu.stop()
        spent = diff(traffic(await cluster.stats()), before)
        idle_rate = {k: v / idle_s for k, v in idle_traffic.items()}
        per = writes * size

        def net(k: str) -> float:
            return (spent[k] - idle_rate[k] * elapsed) / per

        run.datagrams_per_write_node = net("datagrams_out")
        run.bytes_per_write_node = net("bytes_out")
        run.stream_bytes_per_write_node = net("stream_bytes_out")
        run.messages_per_write_node = net("gossip_messages")
        run.write_rate = writes / elapsed
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await cluster.close()
    return run


def propagation_tables(runs: list[PropagationRun]) -> str:
    groups: dict[tuple[str, int], list[PropagationRun]] = defaultdict(list)
    for r in runs:
        groups[(r.profile, r.size)].append(r)
    latency, cost, load = [], [], []
    for (profile, size), rs in groups.items():
        p50 = med([pct(r.all_nodes, 0.5) for r in rs])
        p99 = med([pct(r.all_nodes, 0.99) for r in rs])
        worst = max(max(r.all_nodes, default=float("nan")) for r in rs)
        ack = med([pct(r.acks, 0.5) for r in rs])
        lost = sum(r.lost for r in rs)
        samples = sum(len(r.all_nodes) for r in rs)
        latency.append(
            [
                profile,
                size,
                len(rs),
                samples,
                ms(ack),
                ms(p50),
                ms(p99),
                ms(worst),
                lost,
                SERF_ANCHOR,
            ]
        )
        cost.append(
            [
                profile,
                size,
                f"{med([r.write_rate for r in rs]):.1f}",
                f"{med([r.datagrams_per_write_node for r in rs]):.2f}",
                f"{med([r.bytes_per_write_node for r in rs]):,.0f}",
                f"{med([r.messages_per_write_node for r in rs]):.2f}",
                f"{med([r.stream_bytes_per_write_node for r in rs]):,.0f}",
                f"{med([r.idle_datagrams_per_node_s for r in rs]):.2f}",
                f"{med([r.idle_bytes_per_node_s for r in rs]):,.0f}",
            ]
        )
        load.append(
            [
                profile,
                size,
                f"{med([r.cpu['machine_busy'] for r in rs]):.0%}",
                f"{med([r.cpu['nodes_cores'] for r in rs]):.2f}",
                f"{med([r.cpu['load1'] for r in rs]):.1f}",
            ]
        )
    return "\n\n".join(
        [
            "### Time until a write is visible on all N nodes\n\n"
            + table(
                [
                    "profile",
                    "N",
                    "runs",
                    "writes",
                    "put ack p50",
                    "all nodes p50",
                    "all nodes p99",
                    "worst",
                    "not delivered in 10 s",
                    "anchor",
                ],
                latency,
                "lrrrrrrrrl",
            ),
            "### Traffic per write per node, and idle gossip\n\n"
            + table(
                [
                    "profile",
                    "N",
                    "writes/s",
                    "datagrams / write / node",
                    "UDP bytes / write / node",
                    "gossip msgs / write / node",
                    "stream bytes / write / node",
                    "idle datagrams / node / s",
                    "idle bytes / node / s",
                ],
                cost,
            ),
            "### Host load during the write phase\n\n"
            + table(["profile", "N", "machine CPU busy", "node processes (cores)", "load1"], load),
        ]
    )


# --- 3: failure detection ---------------------------------------------------------


@dataclass
class Detection:
    size: int
    first_suspect: float
    first_dead: float
    median_dead: float
    all_dead: float
    cpu: dict[str, float]
    false_suspect: int = 0
    """Live nodes some observer saw suspect (each node counted once per kill)."""
    false_dead: int = 0
    """Live nodes some observer saw dead (each node counted once per kill)."""
    refutations: int = 0
    """Incarnation raises of live nodes: suspicions of them that reached them."""


async def _time_to_state(
    cluster: ProcCluster,
    observer: int,
    victim_id: str,
    t0: float,
    timeout: float,
    falsely: dict[str, set[str]],
) -> tuple[float, float]:
    """(first seen suspect, first seen dead) on `observer`, seconds after t0; adds to
    `falsely[state]` every other node it reports in that state meanwhile."""
    suspect: float | None = None
    client = cluster.client(observer)
    while time.perf_counter() - t0 < timeout:
        states = {m["node_id"]: m["state"] for m in (await client.members())["members"]}
        now = time.perf_counter() - t0
        _note(falsely, {n: st for n, st in states.items() if n != victim_id})
        state = states.get(victim_id)
        if state == "suspect" and suspect is None:
            suspect = now
        if state == "dead":
            return (now if suspect is None else suspect), now
        await asyncio.sleep(0.05)
    return (float("nan") if suspect is None else suspect), float("nan")


async def _incarnations(cluster: ProcCluster, nodes: list[int]) -> dict[int, int]:
    stats = await asyncio.gather(*(cluster.client(i).stats() for i in nodes))
    return {i: s["incarnation"] for i, s in zip(nodes, stats, strict=True)}


def _note(falsely: dict[str, set[str]], states: dict[str, str]) -> None:
    for node, state in states.items():
        if state in falsely:
            falsely[state].add(node)


async def _watch_alive(
    cluster: ProcCluster, nodes: list[int], falsely: dict[str, set[str]], seconds: float
) -> None:
    """For `seconds`: add to `falsely[state]` every node some node of `nodes` reports
    suspect or dead. (Not cancelled midway: a request cut off would leave its reply on
    the connection.)"""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in nodes:
            _note(falsely, await cluster.member_states(i))
        await asyncio.sleep(0.05)


async def detection_runs(size: int, kills: int, rng: random.Random) -> list[Detection]:
    cluster = await ProcCluster.start(size, "lan")
    out = []
    try:
        await asyncio.sleep(SETTLE)
        for _ in range(kills):
            victim = rng.randrange(1, size)
            victim_id = cluster.nodes[victim].node_id
            observers = [i for i in range(size) if i != victim]
            for i in observers:
                await cluster.client(i).connect()
            before = await _incarnations(cluster, observers)
            falsely: dict[str, set[str]] = {"suspect": set(), "dead": set()}
            cpu = CpuMeter(cluster.pids())
            t0 = time.perf_counter()
            await cluster.kill(victim)
            seen = await asyncio.gather(
                *(_time_to_state(cluster, i, victim_id, t0, 120.0, falsely) for i in observers)
            )
            dead = [d for _, d in seen]
            detection = Detection(
                size, min(s for s, _ in seen), min(dead), med(dead), max(dead), cpu.stop()
            )
            await cluster.restart(victim)
            await cluster.wait_all_alive()
            await _watch_alive(cluster, observers, falsely, SETTLE)
            after = await _incarnations(cluster, observers)
            detection.false_suspect = len(falsely["suspect"] - {victim_id})
            detection.false_dead = len(falsely["dead"] - {victim_id})
            detection.refutations = sum(after[i] - before[i] for i in observers)
            out.append(detection)
    finally:
        await cluster.close()
    return out


def detection_table(results: list[Detection]) -> str:
    groups: dict[int, list[Detection]] = defaultdict(list)
    for d in results:
        groups[d.size].append(d)
    rows = []
    for size, ds in groups.items():
        rows.append(
            [
                size,
                len(ds),
                f"{med([d.first_suspect for d in ds]):.2f} s",
                f"{med([d.first_dead for d in ds]):.2f} s",
                f"{med([d.median_dead for d in ds]):.2f} s",
                f"{med([d.all_dead for d in ds]):.2f} s",
                f"{max(d.all_dead for d in ds):.2f} s",
                f"{med([d.cpu['machine_busy'] for d in ds]):.0%}",
                sum(d.false_suspect for d in ds),
                sum(d.false_dead for d in ds),
                sum(d.refutations for d in ds),
                MEMBERLIST_ANCHOR,
            ]
        )
    return "### Time until a SIGKILLed node is dead on every other node (lan profile)\n\n" + table(
        [
            "N",
            "kills",
            "first suspect",
            "first dead",
            "median observer",
            "all observers",
            "worst all",
            "machine CPU busy",
            "live nodes seen suspect",
            "live nodes seen dead",
            "refuted suspicions",
            "anchor",
        ],
        rows,
        "rrrrrrrrrrrl",
    )


# --- 4: anti-entropy bytes between two real nodes ----------------------------------


@dataclass
class Repair:
    differing: int
    kind: str
    report: dict[str, Any]
    wire_bytes: int


async def _load(
    client: AsyncClient, keys: Sequence[str], value: Callable[[str], Any], inflight: int = 256
) -> None:
    queue = list(keys)

    async def worker() -> None:
        while queue:
            key = queue.pop()
            await client.put(NS, key, value(key))

    await asyncio.gather(*(worker() for _ in range(inflight)))


def _value(key: str) -> str:
    """About 60 bytes of value: with its HLC timestamps, writer id and codec framing an
    LWW entry then transfers as ~150 bytes per [key, state] pair, the same order as the
    100-byte states of the in-memory benchmark."""
    return f"{key}:" + "v" * (60 - len(key))


async def _wire(cluster: ProcCluster) -> int:
    return sum(
        s["transport"]["bytes_out"] + s["transport"]["stream_bytes_out"]
        for s in await cluster.stats()
    )


async def _wait_value(client: AsyncClient, key: str, value: Any) -> None:
    while True:
        with contextlib.suppress(NotFound):
            if (await client.get(NS, key))["value"] == value:
                return
        await asyncio.sleep(0.02)


async def antientropy_runs(
    keys: int, runs: int, rng: random.Random
) -> tuple[dict[str, Any], float, list[Repair], dict[str, Any]]:
    cluster = await ProcCluster.start(2, "lan", AE_CONFIG)
    a, b = cluster.client(0), cluster.client(1)
    peer = cluster.nodes[0].gossip
    repairs = []
    try:
        names = [f"key-{n:07d}" for n in range(keys)]
        loaded = time.monotonic()
        await _load(a, names, _value)
        load_s = time.monotonic() - loaded
        wire0, started = await _wire(cluster), time.monotonic()
        full = await b.sync(peer=peer)
        full["wire_bytes"] = await _wire(cluster) - wire0
        full["seconds"] = time.monotonic() - started
        while (await b.ns_stats(NS))["entries"] < keys:
            await asyncio.sleep(0.1)
        await asyncio.sleep(SETTLE)  # the Merkle tree follows the commits a moment later
        wire0 = await _wire(cluster)
        converged = await b.sync(peer=peer)
        converged["wire_bytes"] = await _wire(cluster) - wire0
        fresh = (f"new-{n:07d}" for n in range(10**6))
        for differing in (1, 10):
            for kind in ("changed", "missing"):
                for r in range(runs):
                    if kind == "changed":
                        chosen = rng.sample(names, differing)
                        values = {k: f"{k}:changed-{r}" for k in chosen}
                    else:
                        chosen = [next(fresh) for _ in range(differing)]
                        values = {k: _value(k) for k in chosen}
                    await _load(a, chosen, values.__getitem__, inflight=differing)
                    wire0 = await _wire(cluster)
                    report = await b.sync(peer=peer)
                    wire = await _wire(cluster) - wire0
                    # `sync` may answer before B committed what it received: wait, so the
                    # next run starts from converged nodes.
                    for k, v in values.items():
                        await _wait_value(b, k, v)
                    repairs.append(Repair(differing, kind, report, wire))
    finally:
        await cluster.close()
    return full, load_s, repairs, converged


def antientropy_tables(
    keys: int, full: dict[str, Any], load_s: float, repairs: list[Repair], converged: dict[str, Any]
) -> str:
    groups: dict[tuple[int, str], list[Repair]] = defaultdict(list)
    for rep in repairs:
        groups[(rep.differing, rep.kind)].append(rep)
    rows = [
        [
            f"{keys:,}",
            0,
            "none (converged)",
            1,
            converged["keys_repaired"],
            f"{converged['digest_bytes']:,}",
            f"{converged['state_bytes']:,}",
            f"{converged['bytes_exchanged']:,}",
            f"{converged['wire_bytes']:,}",
            "-",
        ]
    ]
    for (differing, kind), rs in groups.items():
        total = med([r.report["bytes_exchanged"] for r in rs])
        rows.append(
            [
                f"{keys:,}",
                differing,
                f"{kind} on one side",
                len(rs),
                f"{med([r.report['keys_repaired'] for r in rs]):.0f}",
                f"{med([r.report['digest_bytes'] for r in rs]):,.0f}",
                f"{med([r.report['state_bytes'] for r in rs]):,.0f}",
                f"{total:,.0f}",
                f"{med([r.wire_bytes for r in rs]):,.0f}",
                f"{total / full['bytes_exchanged']:.2e}",
            ]
        )
    rows.append(
        [
            f"{keys:,}",
            f"{keys:,}",
            "full transfer (empty node)",
            1,
            full["keys_repaired"],
            f"{full['digest_bytes']:,}",
            f"{full['state_bytes']:,}",
            f"{full['bytes_exchanged']:,}",
            f"{full['wire_bytes']:,}",
            "1",
        ]
    )
    return (
        "### Anti-entropy bytes between two real nodes (lan profile, `sync` reports)\n\n"
        + table(
            [
                "keys",
                "differing",
                "kind",
                "runs",
                "keys repaired",
                "digest bytes",
                "state bytes",
                "bytes exchanged",
                "on the wire (both nodes)",
                "repair / full",
            ],
            rows,
            "rrlrrrrrrr",
        )
        + f"\n\nLoading {keys:,} keys through one pipelined client took {load_s:.1f} s; "
        + f"the full transfer's `sync` took {full['seconds']:.1f} s. "
        + "`keys repaired` counts keys sent plus keys received (a changed key travels both "
        + "ways and the join settles it). "
        + "Bytes exchanged are msgpack bytes as `sync` reports them; on the wire adds "
        + "envelopes, UDP/TCP framing and whatever SWIM sent meanwhile.\n\n"
        + "In-memory reference for 1,000,000 keys (quoted, not re-run here): "
        + IN_MEMORY_1M
    )


# --- 5: replication keeps pace with a writer at full rate ---------------------------

PACE_NS = "pace"
PACE_RATE_AIM = 0.8
PACE_LAG_AIM = 1.0
PACE_LAG_TIMEOUT = 120.0
"""Seconds after the last ack before a peer that still lacks writes counts as never."""


@dataclass
class PaceRun:
    nodes: int
    puts: int
    seconds: float
    """From the first put sent to the last ack."""
    lag: float = float("nan")
    """Seconds from the last ack until every peer held every write (nan: none or never)."""
    writer_datagrams: float = 0.0
    writer_bytes: float = 0.0
    all_datagrams: float = 0.0
    all_bytes: float = 0.0
    writer_cores: float = 0.0
    peer_cores: float = 0.0
    machine_busy: float = 0.0
    load1: float = 0.0
    queue_dropped: int = 0
    ae_keys: int = 0

    @property
    def rate(self) -> float:
        return self.puts / self.seconds


def _pace_value(n: int) -> str:
    """A 100-byte value, distinct per put."""
    return f"{n:08d}".ljust(100, "x")


async def _pace_load(cluster: ProcCluster, puts: int, clients: int) -> tuple[float, float]:
    """`clients` connections each with one put in flight, until `puts` are acknowledged;
    (first send, last ack) on perf_counter."""
    conns = [AsyncClient(cluster.nodes[0].socket, timeout=120.0) for _ in range(clients)]
    for c in conns:
        await c.connect()
    numbers = iter(range(puts))
    last = 0.0

    async def worker(client: AsyncClient) -> None:
        nonlocal last
        for n in numbers:
            await client.put(PACE_NS, f"k{n:06d}", _pace_value(n))
            last = time.perf_counter()

    try:
        first = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    return first, last


async def _wait_peers_hold(cluster: ProcCluster, puts: int, timeout: float) -> float | None:
    """Poll every peer's entry count until each holds `puts`; perf_counter when the last
    one did, None after `timeout`."""
    deadline = time.perf_counter() + timeout
    waiting = set(range(1, len(cluster)))
    while waiting:
        counts = await asyncio.gather(
            *(cluster.client(i).ns_stats(PACE_NS) for i in sorted(waiting))
        )
        now = time.perf_counter()
        for i, c in zip(sorted(waiting), counts, strict=True):
            if c["entries"] >= puts:
                waiting.discard(i)
        if not waiting:
            return now
        if now > deadline:
            return None
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def pace_run(nodes: int, puts: int, clients: int, config: str | None) -> PaceRun:
    cluster = await ProcCluster.start(nodes, "lan", config)
    try:
        await cluster.client(0).ns_init(PACE_NS, replicas="all")
        await asyncio.sleep(SETTLE)
        await wait_drained(cluster)
        before = await cluster.stats()
        pids = cluster.pids()
        writer_cpu, peers_cpu = CpuMeter(pids[:1]), CpuMeter(pids[1:])
        first, last = await _pace_load(cluster, puts, clients)
        writer = writer_cpu.stop()
        run = PaceRun(nodes, puts, last - first)
        run.writer_cores = writer["nodes_cores"]
        run.machine_busy = writer["machine_busy"]
        run.load1 = writer["load1"]
        if nodes > 1:
            held = await _wait_peers_hold(cluster, puts, PACE_LAG_TIMEOUT)
            if held is not None:
                run.lag = held - last
            run.peer_cores = peers_cpu.stop()["nodes_cores"] / (nodes - 1)
            await wait_drained(cluster)
        after = await cluster.stats()
        spent = [diff(traffic([a]), traffic([b])) for a, b in zip(after, before, strict=True)]
        run.writer_datagrams = spent[0]["datagrams_out"] / puts
        run.writer_bytes = spent[0]["bytes_out"] / puts
        run.all_datagrams = sum(s["datagrams_out"] for s in spent) / puts
        run.all_bytes = sum(s["bytes_out"] for s in spent) / puts
        run.queue_dropped = sum(
            a["dissemination"]["queue_dropped"] - b["dissemination"]["queue_dropped"]
            for a, b in zip(after, before, strict=True)
        )
        run.ae_keys = sum(
            a["antientropy"]["keys_repaired"] - b["antientropy"]["keys_repaired"]
            for a, b in zip(after, before, strict=True)
        )
    finally:
        await cluster.close()
    return run


async def pace_runs(
    runs: int, puts: int, clients: int, nodes: int, config: str | None
) -> list[PaceRun]:
    """Single node and replicated cluster alternately, which goes first alternating too."""
    out = []
    for r in range(runs):
        order = [1, nodes] if r % 2 == 0 else [nodes, 1]
        for n in order:
            run = await pace_run(n, puts, clients, config)
            print(
                f"<!-- pace run {r + 1} N={n}: {run.rate:,.0f} puts/s, lag {run.lag:.2f} s, "
                f"writer {run.writer_cores:.2f} cores, {run.writer_datagrams:.3f} dgrams/put, "
                f"dropped {run.queue_dropped}, ae keys {run.ae_keys}, "
                f"load1 {run.load1:.1f} -->",
                flush=True,
            )
            out.append(run)
    return out


def pace_tables(runs: list[PaceRun], nodes: int, clients: int) -> str:
    single = [r for r in runs if r.nodes == 1]
    repl = [r for r in runs if r.nodes == nodes]
    # Ratio per pair (the runs of one round), then the median of the ratios.
    ratios = [b.rate / a.rate for a, b in zip(single, repl, strict=True)]
    ratio = med(ratios)
    lags = [r.lag for r in repl]
    never = sum(1 for x in lags if x != x)
    lag = med([x for x in lags if x == x]) if never < len(lags) else float("nan")
    puts = repl[0].puts
    aims = table(
        ["figure", "median", "runs", "aim", "met"],
        [
            [
                f"writer's put rate, {nodes} nodes / 1 node",
                f"{ratio:.2f}x ({med([r.rate for r in repl]):,.0f} / "
                f"{med([r.rate for r in single]):,.0f} puts/s)",
                " ".join(f"{x:.2f}" for x in ratios),
                f">= {PACE_RATE_AIM}x",
                "yes" if ratio >= PACE_RATE_AIM else "no",
            ],
            [
                "last ack until every peer holds every write",
                f"{lag:.2f} s",
                " ".join(f"{x:.2f}" for x in lags),
                f"<= {PACE_LAG_AIM:.0f} s",
                "yes" if never == 0 and lag <= PACE_LAG_AIM else "no",
            ],
        ],
        "lllll",
    )
    cost = table(
        [
            "nodes",
            "puts/s",
            "writer datagrams / put",
            "writer UDP bytes / put",
            "all nodes datagrams / put",
            "all nodes UDP bytes / put",
            "writer CPU (cores)",
            "each peer CPU (cores)",
            "queue dropped",
            "anti-entropy keys",
            "machine busy",
            "load1",
        ],
        [
            [
                n,
                f"{med([r.rate for r in rs]):,.0f}",
                f"{med([r.writer_datagrams for r in rs]):.3f}",
                f"{med([r.writer_bytes for r in rs]):,.0f}",
                f"{med([r.all_datagrams for r in rs]):.3f}",
                f"{med([r.all_bytes for r in rs]):,.0f}",
                f"{med([r.writer_cores for r in rs]):.2f}",
                f"{med([r.peer_cores for r in rs]):.2f}" if n > 1 else "-",
                f"{med([r.queue_dropped for r in rs]):,.0f}",
                f"{med([r.ae_keys for r in rs]):,.0f}",
                f"{med([r.machine_busy for r in rs]):.0%}",
                f"{med([r.load1 for r in rs]):.1f}",
            ]
            for n, rs in ((1, single), (nodes, repl))
        ],
    )
    return (
        f"### Replication keeps pace: {puts:,} puts of 100 bytes by {clients} clients on one "
        f"node (lan profile, `replicas: all`)\n\n{aims}\n\n"
        f"Traffic, CPU and repair during the run (medians of {len(repl)} runs each; "
        "CPU over the write phase, peers until they held every write):\n\n"
        f"{cost}"
    )


# --- main -----------------------------------------------------------------------


def busy_loop() -> subprocess.Popen[bytes]:
    """A process that keeps one core busy until killed (false alarms under CPU load)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def host_line() -> str:
    load = os.getloadavg()
    return (
        f"Host: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "at start."
    )


async def main_async(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    print(host_line(), flush=True)
    if "propagation" in args.sections:
        config = args.node_config.read_text() if args.node_config else None
        runs = []
        for profile in args.profiles:
            for size in args.sizes:
                for r in range(args.runs):
                    run = await propagation_run(
                        profile, size, args.writes, args.idle, args.gap, rng, config
                    )
                    print(
                        f"<!-- {profile} N={size} run {r + 1}: p50 {ms(pct(run.all_nodes, 0.5))} "
                        f"p99 {ms(pct(run.all_nodes, 0.99))} lost {run.lost} "
                        f"busy {run.cpu['machine_busy']:.0%} -->",
                        flush=True,
                    )
                    runs.append(run)
        print("\n" + propagation_tables(runs) + "\n", flush=True)
    if "detection" in args.sections:
        results = []
        hogs = [busy_loop() for _ in range(args.busy)]
        try:
            for size in args.detect_sizes:
                results += await detection_runs(size, args.kills, rng)
                print(f"<!-- detection N={size} done -->", flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        print(f"\n{args.busy} busy-loop process(es) ran meanwhile.\n", flush=True)
        print("\n" + detection_table(results) + "\n", flush=True)
    if "antientropy" in args.sections:
        full, load_s, repairs, converged = await antientropy_runs(args.keys, args.ae_runs, rng)
        print("\n" + antientropy_tables(args.keys, full, load_s, repairs, converged) + "\n")
    if "pace" in args.sections:
        config = args.node_config.read_text() if args.node_config else None
        runs = await pace_runs(
            args.pace_runs, args.pace_puts, args.pace_clients, args.pace_nodes, config
        )
        print("\n" + pace_tables(runs, args.pace_nodes, args.pace_clients) + "\n", flush=True)
    print(host_line().replace("at start", "at the end"))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--sections",
        nargs="+",
        default=["propagation", "detection", "antientropy"],
        choices=["propagation", "detection", "antientropy", "pace"],
    )
    p.add_argument("--sizes", nargs="+", type=int, default=[3, 10, 25])
    p.add_argument("--profiles", nargs="+", default=["lan", "local"], choices=["lan", "local"])
    p.add_argument("--runs", type=int, default=3, help="clusters per (profile, size)")
    p.add_argument("--writes", type=int, default=100, help="writes per run")
    p.add_argument("--gap", type=float, default=0.2, help="seconds between writes")
    p.add_argument("--idle", type=float, default=15.0, help="idle window, seconds")
    p.add_argument(
        "--node-config",
        type=Path,
        help="TOML file given to every node of the propagation and pace runs (figures for a "
        "setting)",
    )
    p.add_argument("--detect-sizes", nargs="+", type=int, default=[3, 10, 25])
    p.add_argument("--kills", type=int, default=3, help="SIGKILLs per detection size")
    p.add_argument(
        "--busy", type=int, default=1, help="busy-loop processes during detection (0: none)"
    )
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--ae-runs", type=int, default=5, help="repairs per (differing, kind)")
    p.add_argument("--pace-runs", type=int, default=5, help="pairs of pace runs")
    p.add_argument("--pace-puts", type=int, default=20_000)
    p.add_argument("--pace-clients", type=int, default=50)
    p.add_argument("--pace-nodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=4)
    args = p.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
