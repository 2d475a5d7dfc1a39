"""How long a write takes to reach a watcher of a sharded namespace, local and relayed.

5 `swarmnode run` processes on loopback (sealed gossip, `local` profile, no
fsync), a namespace with R = 2 and 64 partitions, a watcher on node 0, and
paced writes through nodes 1-4. For each write: the time from sending the put
to the watcher receiving its event. Writes to partitions node 0 owns reach it
by gossip among the owners and show as its own commit ("local"); the others
come from the owner that feeds it, over a long-polled feed ("relayed"). Both
kinds are measured in the same rounds, interleaved, so load affects both
alike. Aim: the relayed median no more than 2x the local one (one long-poll
answer against one gossip hop). Medians over --rounds rounds of --writes.

Run: .venv/bin/python benchmarks/sharded_watch.py [--rounds 3] [--writes 200] [--rate 50]
Prints Markdown; results/sharded_watch.md holds the committed run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replication_procs import ProcCluster
from sharding import CONFIG, NS, wait_settled

from swarmnode.placement.hashing import partition_of
from swarmnode.placement.rendezvous import owner_table

NODES, R, PARTITIONS = 5, 2, 64


async def one_round(
    cluster: ProcCluster, local: set[int], writes: int, rate: float, tag: str
) -> dict[str, list[float]]:
    arrived: dict[str, float] = {}
    done = asyncio.Event()
    keys = [f"{tag}-{i:05d}" for i in range(writes)]
    watch = cluster.client(0).watch(NS)
    await watch.start()

    async def read() -> None:
        async for event in watch:
            if event["event"] == "put":
                arrived.setdefault(event["key"], time.perf_counter())
                if len(arrived) >= writes:
                    done.set()

    reader = asyncio.get_running_loop().create_task(read())
    sent: dict[str, float] = {}
    for i, key in enumerate(keys):
        sent[key] = time.perf_counter()
        await cluster.client(1 + i % (NODES - 1)).put(NS, key, i)
        await asyncio.sleep(1 / rate)
    await asyncio.wait_for(done.wait(), 60)
    reader.cancel()
    await watch.aclose()
    out: dict[str, list[float]] = {"local": [], "relayed": []}
    for key in keys:
        kind = "local" if partition_of(key, PARTITIONS) in local else "relayed"
        out[kind].append((arrived[key] - sent[key]) * 1000)
    return out


async def main(args: argparse.Namespace) -> None:
    cluster = await ProcCluster.start(NODES, "local", config=CONFIG)
    try:
        await cluster.client(0).ns_init(NS, replicas=R, partitions=PARTITIONS)
        await wait_settled(cluster, sharded=True)
        view = (await cluster.client(0).stats())["placement"]["view"]
        me = cluster.nodes[0].node_id
        table = owner_table(NS, PARTITIONS, view, R)
        local = {p for p, owners in enumerate(table) if me in owners}
        rounds = []
        for r in range(args.rounds):
            rounds.append(await one_round(cluster, local, args.writes, args.rate, f"r{r}"))
    finally:
        await cluster.close()
    load = os.getloadavg()
    print(f"# Sharded watch delivery (5 nodes, R = 2, {PARTITIONS} partitions)\n")
    print(f"Load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (2 cores,")
    print("shared with other engineers' runs). Milliseconds from sending a put to the")
    print(f"watcher's event; {args.writes} writes per round at {args.rate:g}/s.\n")
    print("| round | local median | local p95 | relayed median | relayed p95 | ratio |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for r, got in enumerate(rounds):
        lm, rm = statistics.median(got["local"]), statistics.median(got["relayed"])
        lp = statistics.quantiles(got["local"], n=20)[-1]
        rp = statistics.quantiles(got["relayed"], n=20)[-1]
        ratios.append(rm / lm)
        print(f"| {r} | {lm:.1f} | {lp:.1f} | {rm:.1f} | {rp:.1f} | {rm / lm:.2f} |")
    ratio = statistics.median(ratios)
    verdict = "met" if ratio <= 2 else "not met"
    print(f"\nMedian ratio relayed / local: {ratio:.2f} (aim: at most 2; {verdict}).")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--writes", type=int, default=200)
    p.add_argument("--rate", type=float, default=50.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
