"""Sharded namespaces on real node processes, beside the same clusters holding everything.

Three sections, each a cluster of `swarmnode run` processes on loopback
(sealed gossip, `local` profile, no fsync: this measures placement, not the
disk):

- `storage`: for N in --sizes, a namespace with `replicas = 3` and the same
  namespace with `replicas = all` (the default), each loaded with the same
  writes (random 256-byte values, sent to every node in turn). Per node: the
  bytes of the namespace it stores, as a share of the namespace's total
  (aim: R/N), and the datagrams (and bytes) it sends per write, idle traffic
  subtracted (aim: falls as R/N against `all`), the writes paced at --rate a
  second so both clusters pack deltas alike. Medians of --runs clusters.
- `vectors`: --vectors clustered vectors (dim --dim, cosine) in a sharded
  namespace (R = 2) on 6 nodes, and the same vectors in one node's unsharded
  namespace: recall@10 of `vsearch` against numpy brute force for both (aim:
  sharded within 0.01 of unsharded), and single-query latency through the
  socket (aim: sharded no worse than 2x the node searching everything).
- `rebalance`: 5 nodes, R = 2, loaded; a sixth joins. Time until every node
  has settled (nothing moving, nothing awaited, nothing held that a node does
  not own) and the bytes moved (handoff messages plus anti-entropy state
  bytes), beside the data (aim: about 1/6 of what the cluster stores).

Run: .venv/bin/python benchmarks/sharding.py [--sections storage vectors rebalance]
     [--sizes 3 6 9] [--runs 3] [--writes 3000] [--rate 200] [--vectors 300000] [--json PATH]
     [--plot PATH]
Prints Markdown; results/sharding.md holds the committed run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replication_procs import CpuMeter, Node, ProcCluster, _read_ready
from vectors import clustered, ground_truth, recall

from swarmnode.errors import SwarmError

NS = "shard"
CONFIG = """
[store]
sync = false
[dissemination]
max_queue = 1000000
"""
K = 10
SETTLE_TIMEOUT = 600.0
IDLE_WINDOW = 10.0


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def note(text: str) -> None:
    print(f"<!-- {text} -->", flush=True)


def host_line(when: str) -> str:
    load = os.getloadavg()
    return (
        f"Host: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"{when}."
    )


# --- cluster helpers --------------------------------------------------------------


async def start(size: int) -> ProcCluster:
    return await ProcCluster.start(size, "local", config=CONFIG)


async def add_node(cluster: ProcCluster) -> None:
    """Start one more node on a fresh directory, joined to the first."""
    i = len(cluster.nodes)
    host = cluster.nodes[0].bind.rsplit(".", 2)[0]
    node = Node(i, cluster.base / f"node{i}", f"{host}.{1 + i // 250}.{1 + i % 250}:0")
    cluster.nodes.append(node)
    cluster._spawn(node, seed=cluster.nodes[0].gossip)
    _read_ready([node], 120.0)
    await cluster.wait_all_alive()


async def placement(cluster: ProcCluster) -> list[dict[str, Any]]:
    return [s["placement"] for s in await cluster.stats()]


async def wait_settled(
    cluster: ProcCluster, sharded: bool, timeout: float = SETTLE_TIMEOUT
) -> None:
    """Until no delta waits for gossip and, sharded, every node settled on the same view with
    nothing moving, awaited, or held without being owned."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await cluster.stats()
        # A lone node's deltas stay pending (there is nobody to send them to).
        quiet = len(cluster) == 1 or all(s["dissemination"]["pending"] == 0 for s in stats)
        if sharded:
            views = {tuple(s["placement"]["view"] or ()) for s in stats}
            spec = [s["placement"]["namespaces"].get(NS) for s in stats]
            quiet = (
                quiet
                and len(views) == 1
                and len(next(iter(views))) == len(cluster)
                and all(s["placement"]["settled"] and not s["placement"]["moves"] for s in stats)
                and all(
                    x is not None and not x["filling"] and not x["held_not_owned"] for x in spec
                )
            )
        if quiet:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("cluster did not settle")
        await asyncio.sleep(0.2)


def delta_messages(stats: list[dict[str, Any]]) -> int:
    """Gossip messages of deltas the nodes sent (each fits one datagram), all nodes."""
    return sum(s["dissemination"]["messages_sent"] for s in stats)


def traffic(stats: list[dict[str, Any]]) -> dict[str, int]:
    keys = ("datagrams_out", "bytes_out", "stream_messages_out", "stream_bytes_out")
    return {k: sum(s["transport"][k] for s in stats) for k in keys}


async def define(cluster: ProcCluster, replicas: int | str, **extra: Any) -> None:
    await cluster.client(0).ns_init(NS, replicas=replicas, **extra)
    deadline = time.monotonic() + 60
    want = None if replicas == "all" else replicas
    while True:
        seen = []
        for i in range(len(cluster)):
            try:
                seen.append((await cluster.client(i).ns_stats(NS)).get("replicas"))
            except SwarmError:
                seen.append("not yet")
        if all(r == want for r in seen):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"definition not everywhere: {seen}")
        await asyncio.sleep(0.1)


async def load(
    cluster: ProcCluster,
    keys: int,
    value_bytes: int,
    rng: random.Random,
    in_flight: int = 32,
    rate: float = 0.0,
) -> float:
    """Write `keys` random values, each through node (i mod N); returns the seconds taken.
    With `rate`, write i starts no sooner than i / rate seconds in: the same arrivals for
    every cluster, so that how many deltas share a datagram does not depend on how fast
    one cluster happens to take them."""
    sem = asyncio.Semaphore(in_flight)
    started = time.perf_counter()

    async def one(i: int) -> None:
        value = rng.randbytes(value_bytes // 2).hex()
        if rate:
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        async with sem:
            await cluster.client(i % len(cluster)).put(NS, f"key-{i:07d}", value)

    await asyncio.gather(*(one(i) for i in range(keys)))
    return time.perf_counter() - started


# --- storage and write traffic ------------------------------------------------------


async def storage_run(
    size: int, replicas: int | str, writes: int, rng: random.Random, rate: float
) -> dict:
    cluster = await start(size)
    sharded = replicas != "all"
    try:
        await define(cluster, replicas)
        await wait_settled(cluster, sharded)
        cpu = CpuMeter(cluster.pids())
        stats0 = await cluster.stats()
        t0, before, gossip0 = time.monotonic(), traffic(stats0), delta_messages(stats0)
        load_s = await load(cluster, writes, 256, rng, rate=rate)
        await wait_settled(cluster, sharded)
        elapsed = time.monotonic() - t0
        stats1 = await cluster.stats()
        spent = {k: v - before[k] for k, v in traffic(stats1).items()}
        gossip = delta_messages(stats1) - gossip0
        busy = cpu.stop()
        # Idle traffic (membership, consensus heartbeats, anti-entropy rounds) measured
        # once the writes have settled: right after a start it still holds the
        # cluster's own catching up, which made the last run's figures negative.
        idle_t0, idle0 = time.monotonic(), traffic(stats1)
        await asyncio.sleep(IDLE_WINDOW)
        idle_s = time.monotonic() - idle_t0
        idle = {k: v - idle0[k] for k, v in traffic(await cluster.stats()).items()}
        per = writes * size

        def net(k: str) -> float:
            return (spent[k] - idle[k] / idle_s * elapsed) / per

        stats = [await cluster.client(i).ns_stats(NS) for i in range(size)]
        local = [s.get("local_bytes", s["bytes"]) for s in stats]
        total = stats[0]["bytes"]
        entries = [s.get("local_entries", s["entries"]) for s in stats]
        return {
            "size": size,
            "replicas": replicas,
            "writes": writes,
            "total_bytes": total,
            "local_bytes": local,
            "local_entries": entries,
            "share": [b / total for b in local],
            "datagrams_per_write_node": net("datagrams_out"),
            "delta_messages_per_write_node": gossip / per,
            "idle_datagrams_per_s_node": idle["datagrams_out"] / idle_s / size,
            "load_seconds_settled": elapsed,
            "bytes_per_write_node": net("bytes_out") + net("stream_bytes_out"),
            "load_s": load_s,
            "cpu": busy,
        }
    finally:
        await cluster.close()


def storage_tables(runs: list[dict]) -> str:
    rows = []
    sizes = sorted({r["size"] for r in runs})
    for size in sizes:
        whole = [r for r in runs if r["size"] == size and r["replicas"] == "all"]
        sharded = [r for r in runs if r["size"] == size and r["replicas"] != "all"]
        if not whole or not sharded:
            continue
        r = sharded[0]["replicas"]
        share_s = med([med(x["share"]) for x in sharded])
        share_max = med([max(x["share"]) for x in sharded])
        share_w = med([med(x["share"]) for x in whole])
        dg_s = med([x["datagrams_per_write_node"] for x in sharded])
        dg_w = med([x["datagrams_per_write_node"] for x in whole])
        by_s = med([x["bytes_per_write_node"] for x in sharded])
        by_w = med([x["bytes_per_write_node"] for x in whole])
        gm_s = med([x["delta_messages_per_write_node"] for x in sharded])
        gm_w = med([x["delta_messages_per_write_node"] for x in whole])
        aim = min(1.0, r / size)
        rows.append(
            [
                size,
                f"{share_w:.3f}",
                f"{share_s:.3f} (max {share_max:.3f})",
                f"{aim:.3f}",
                f"{dg_w:.2f}",
                f"{dg_s:.2f}",
                f"{dg_s / dg_w:.2f}",
                f"{by_w:,.0f}",
                f"{by_s:,.0f}",
                f"{by_s / by_w:.2f}",
                f"{gm_w:.2f}",
                f"{gm_s:.2f}",
                f"{gm_s / gm_w:.2f}",
                "met"
                if abs(share_s - aim) <= 0.1 * aim + 0.02 and dg_s / dg_w <= aim * 1.35
                else "not met",
            ]
        )
    return table(
        [
            "N",
            "stored share/node, all",
            f"stored share/node, R={runs[0]['replicas'] if runs[0]['replicas'] != 'all' else 3}",
            "R/N",
            "datagrams/write/node, all",
            "datagrams/write/node, R",
            "ratio",
            "bytes/write/node, all",
            "bytes/write/node, R",
            "ratio",
            "delta msgs/write/node, all",
            "delta msgs/write/node, R",
            "ratio",
            "aim",
        ],
        rows,
    )


# --- vector search ---------------------------------------------------------------------


async def load_vectors(cluster: ProcCluster, data: np.ndarray, in_flight: int = 64) -> float:
    sem = asyncio.Semaphore(in_flight)
    started = time.perf_counter()
    done = [0]

    async def one(i: int) -> None:
        async with sem:
            await cluster.client(i % len(cluster)).put(
                NS, f"v{i}", i, vector=data[i].astype("<f4").tobytes()
            )
        done[0] += 1
        if done[0] % 50_000 == 0:
            note(f"loaded {done[0]:,} vectors in {time.perf_counter() - started:.0f}s")

    await asyncio.gather(*(one(i) for i in range(len(data))))
    return time.perf_counter() - started


async def wait_indexed(cluster: ProcCluster, expected: int, timeout: float = 3600.0) -> float:
    """Until the nodes' vector indexes hold `expected` vectors in all (each once per copy)."""
    started = time.monotonic()
    while True:
        stats = await cluster.stats()
        held = sum(s["vectors"]["namespaces"].get(NS, {}).get("vectors", 0) for s in stats)
        if held >= expected and all(s["vectors"]["lag"] == 0 for s in stats):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"vectors not indexed: {held} of {expected}")
        await asyncio.sleep(1.0)


async def query(
    cluster: ProcCluster, queries: np.ndarray
) -> tuple[list[list[int]], list[float], int]:
    """Results, per-query latencies (one in flight, node 0's socket), partial answers."""
    found, lat, partial = [], [], 0
    client = cluster.client(0)
    for q in queries:
        packed = q.astype("<f4").tobytes()
        t = time.perf_counter()
        reply = await client.vsearch(NS, packed, k=K)
        lat.append(time.perf_counter() - t)
        partial += bool(reply.get("partial"))
        found.append([int(item["key"][1:]) for item in reply["items"]])
    return found, lat, partial


async def vectors_run(n: int, dim: int, queries_n: int, nodes: int, replicas: int) -> dict:
    data, queries = clustered(n, dim, queries_n, clusters=200)
    truth = ground_truth(data, queries)
    out: dict[str, Any] = {"n": n, "dim": dim, "queries": queries_n, "nodes": nodes}
    for label, size, reps in (("sharded", nodes, replicas), ("unsharded", 1, "all")):
        cluster = await start(size)
        try:
            await define(cluster, reps, dim=dim, metric="cosine")
            await wait_settled(cluster, reps != "all")
            load_s = await load_vectors(cluster, data)
            index_s = await wait_indexed(cluster, n * (replicas if reps != "all" else 1))
            await wait_settled(cluster, reps != "all")
            note(f"{label}: loaded in {load_s:.0f}s, indexed {index_s:.0f}s later")
            await query(cluster, queries[:50])  # warm caches and round-trip estimates
            found, lat, partial = await query(cluster, queries)
            per_node = [
                s["vectors"]["namespaces"].get(NS, {}).get("vectors", 0)
                for s in await cluster.stats()
            ]
            out[label] = {
                "recall": recall(found, truth),
                "p50_ms": 1000 * med(lat),
                "p99_ms": 1000 * float(np.percentile(lat, 99)),
                "mean_ms": 1000 * statistics.fmean(lat),
                "partial": partial,
                "load_s": load_s,
                "index_s": index_s,
                "vectors_per_node": per_node,
            }
            note(f"{label}: recall {out[label]['recall']:.4f} p50 {out[label]['p50_ms']:.2f} ms")
        finally:
            await cluster.close()
    return out


def vectors_table(v: dict) -> str:
    s, u = v["sharded"], v["unsharded"]
    rows = [
        [
            "recall@10 vs numpy brute force",
            f"{s['recall']:.4f}",
            f"{u['recall']:.4f}",
            "within 0.01 of unsharded",
            "met" if s["recall"] >= u["recall"] - 0.01 else "not met",
        ],
        [
            "latency p50 (ms, one query in flight)",
            f"{s['p50_ms']:.2f}",
            f"{u['p50_ms']:.2f}",
            "<= 2x unsharded",
            "met" if s["p50_ms"] <= 2 * u["p50_ms"] else "not met",
        ],
        ["latency p99 (ms)", f"{s['p99_ms']:.2f}", f"{u['p99_ms']:.2f}", "", ""],
        ["partial answers", s["partial"], u["partial"], "0", ""],
        [
            "vectors per node",
            ", ".join(f"{x:,}" for x in s["vectors_per_node"]),
            f"{u['vectors_per_node'][0]:,}",
            "",
            "",
        ],
        ["load through the sockets (s)", f"{s['load_s']:.0f}", f"{u['load_s']:.0f}", "", ""],
    ]
    return table(
        ["measure", f"sharded (R=2, {v['nodes']} nodes)", "unsharded (1 node)", "aim", ""], rows
    )


# --- rebalance after a join ---------------------------------------------------------------


async def rebalance_run(
    size: int, replicas: int, keys: int, value_bytes: int, rng: random.Random
) -> dict:
    cluster = await start(size)
    try:
        await define(cluster, replicas)
        await wait_settled(cluster, True)
        await load(cluster, keys, value_bytes, rng)
        await wait_settled(cluster, True)
        stats = await cluster.stats()
        stored = sum([(await cluster.client(i).ns_stats(NS))["local_bytes"] for i in range(size)])
        logical = (await cluster.client(0).ns_stats(NS))["bytes"]
        before = {
            "handoff": sum(s["placement"].get("handoff_bytes_sent", 0) for s in stats),
            "state": sum(s["antientropy"]["state_bytes"] for s in stats),
        }
        t0 = time.monotonic()
        await add_node(cluster)
        await wait_settled(cluster, True)
        took = time.monotonic() - t0
        stats = await cluster.stats()
        after = {
            "handoff": sum(s["placement"].get("handoff_bytes_sent", 0) for s in stats),
            "state": sum(s["antientropy"]["state_bytes"] for s in stats),
        }
        newcomer = await cluster.client(size).ns_stats(NS)
        moved = after["handoff"] - before["handoff"] + after["state"] - before["state"]
        return {
            "size": size,
            "replicas": replicas,
            "keys": keys,
            "logical_bytes": logical,
            "stored_bytes": stored,
            "handoff_bytes": after["handoff"] - before["handoff"],
            "antientropy_state_bytes": after["state"] - before["state"],
            "moved_bytes": moved,
            "newcomer_bytes": newcomer["local_bytes"],
            "newcomer_entries": newcomer["local_entries"],
            "seconds": took,
        }
    finally:
        await cluster.close()


def rebalance_table(runs: list[dict]) -> str:
    rows = []
    for r in runs:
        share = r["moved_bytes"] / r["stored_bytes"]
        aim = 1 / (r["size"] + 1)
        rows.append(
            [
                f"{r['size']} -> {r['size'] + 1}",
                f"{r['keys']:,}",
                f"{r['stored_bytes']:,}",
                f"{r['newcomer_bytes']:,} ({r['newcomer_bytes'] / r['stored_bytes']:.3f})",
                f"{r['handoff_bytes']:,}",
                f"{r['antientropy_state_bytes']:,}",
                f"{share:.3f}",
                f"{aim:.3f}",
                f"{r['seconds']:.1f}",
                "met" if share <= aim * 1.5 else "not met",
            ]
        )
    return table(
        [
            "join",
            "entries",
            "stored (all copies, bytes)",
            "newcomer holds (share)",
            "handoff bytes",
            "anti-entropy state bytes",
            "moved / stored",
            "1/(N+1)",
            "seconds to settle",
            "aim",
        ],
        rows,
    )


# --- plot ----------------------------------------------------------------------------------


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["size"] for r in runs})
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, style in (("all", "o-"), ("sharded", "s-")):
        pick = [r for r in runs if (r["replicas"] == "all") == (mode == "all")]
        shares = [med([med(r["share"]) for r in pick if r["size"] == n]) for n in sizes]
        dgs = [med([r["datagrams_per_write_node"] for r in pick if r["size"] == n]) for n in sizes]
        label = "replicas = all" if mode == "all" else "replicas = 3"
        a.plot(sizes, shares, style, label=label)
        b.plot(sizes, dgs, style, label=label)
    a.plot(sizes, [min(1, 3 / n) for n in sizes], "k--", label="R/N")
    whole = [
        med(
            [
                r["datagrams_per_write_node"]
                for r in runs
                if r["size"] == n and r["replicas"] == "all"
            ]
        )
        for n in sizes
    ]
    b.plot(
        sizes,
        [w * min(1, 3 / n) for w, n in zip(whole, sizes, strict=True)],
        "k--",
        label="all x R/N",
    )
    a.set(xlabel="nodes", ylabel="share of the namespace stored per node", ylim=(0, 1.05))
    b.set(xlabel="nodes", ylabel="datagrams sent per write per node")
    for ax in (a, b):
        ax.set_xticks(sizes)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("Sharded namespace (R = 3) beside the same cluster holding everything")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# --- main -----------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    results: dict[str, Any] = {"host_start": host_line("at start")}
    print(results["host_start"], flush=True)
    if "storage" in args.sections:
        runs = []
        for size in args.sizes:
            for _ in range(args.runs):
                for replicas in ("all", 3):
                    run = await storage_run(size, replicas, args.writes, rng, args.rate)
                    note(
                        f"storage N={size} replicas={replicas}: share {med(run['share']):.3f} "
                        f"datagrams/write/node {run['datagrams_per_write_node']:.2f} "
                        f"busy {run['cpu']['machine_busy']:.0%}"
                    )
                    runs.append(run)
        results["storage"] = runs
        print("\n" + storage_tables(runs) + "\n", flush=True)
        if args.plot:
            plot(runs, Path(args.plot))
    if "vectors" in args.sections:
        v = await vectors_run(args.vectors, args.dim, args.queries, 6, 2)
        results["vectors"] = v
        print("\n" + vectors_table(v) + "\n", flush=True)
    if "rebalance" in args.sections:
        runs = []
        for _ in range(args.runs):
            run = await rebalance_run(5, 2, args.rebalance_keys, 512, rng)
            note(
                f"rebalance: moved {run['moved_bytes']:,} of {run['stored_bytes']:,} "
                f"in {run['seconds']:.1f}s"
            )
            runs.append(run)
        results["rebalance"] = runs
        print("\n" + rebalance_table(runs) + "\n", flush=True)
    results["host_end"] = host_line("at the end")
    print(results["host_end"])
    return results


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--sections",
        nargs="+",
        default=["storage", "vectors", "rebalance"],
        choices=["storage", "vectors", "rebalance"],
    )
    p.add_argument("--sizes", nargs="+", type=int, default=[3, 6, 9])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--writes", type=int, default=3000)
    p.add_argument(
        "--rate", type=float, default=200.0, help="storage writes per second (0: unpaced)"
    )
    p.add_argument("--vectors", type=int, default=300_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--rebalance-keys", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="write the raw results here")
    p.add_argument("--plot", help="write the storage/traffic plot (PNG) here")
    args = p.parse_args(argv)
    results = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
