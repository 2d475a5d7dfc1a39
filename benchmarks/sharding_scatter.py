"""The fixed cost of a scatter: one sharded cluster, four request kinds timed one at a time.

Starts 6 node processes (`local` profile), a namespace with `replicas = 2`,
loads --vectors clustered vectors, then times --queries requests of each
kind through node 0's socket, one in flight: `ping` (the socket alone),
`get` of random keys (one call to an owner for 2 keys of 3), `vsearch`
(a scatter to a covering set and a search on each) and `ns_stats` (the same
scatter without a search). Prints the median of each in ms. Used for the
before/after of the scatter path in results/sharding.md: run it from
another checkout's PYTHONPATH for "before", interleaved with this one.

Run: PYTHONPATH=. .venv/bin/python benchmarks/sharding_scatter.py [--vectors 8000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sharding as bench


async def median_ms(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


async def run(n: int, queries: int) -> dict[str, float]:
    data, qs = bench.clustered(n, 64, 1)
    cluster = await bench.start(6)
    try:
        await bench.define(cluster, 2, dim=64, metric="cosine")
        await bench.wait_settled(cluster, True)
        await bench.load_vectors(cluster, data)
        await bench.wait_indexed(cluster, n * 2)
        await bench.wait_settled(cluster, True)
        client = cluster.client(0)
        q = qs[0].astype("<f4").tobytes()
        rng = np.random.default_rng(1)
        for _ in range(50):  # warm caches and round-trip estimates
            await client.vsearch(bench.NS, q, k=bench.K)
        return {
            "ping": await median_ms(client.ping, queries),
            "get": await median_ms(lambda: client.get(bench.NS, f"v{rng.integers(n)}"), queries),
            "vsearch": await median_ms(lambda: client.vsearch(bench.NS, q, k=bench.K), queries),
            "ns_stats": await median_ms(lambda: client.ns_stats(bench.NS), queries),
        }
    finally:
        await cluster.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vectors", type=int, default=8000)
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args()
    print(bench.host_line("at start"), flush=True)
    for name, ms in asyncio.run(run(args.vectors, args.queries)).items():
        print(f"{name} {ms:.2f} ms")
    print(bench.host_line("at the end"))


if __name__ == "__main__":
    main()
