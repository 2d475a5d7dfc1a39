"""What a metric costs on a hot path, beside the string-keyed dict counters of today.

The aim: an increment well under a microsecond. Each figure is the time of one call
through `timeit` over `--number` calls, the median of `--runs` repeats, all in one
process and one run, beside two baselines measured the same way: a `dict[str, int]`
increment with a constant key (today's `stats["deltas_sent"] += 1`) and with a key
built per call (today's `counters[f"merge_rejected_{code}"] += 1`). It also times the
two renderings of a registry shaped like a node's (a few dozen series): the `stats`
snapshot and the Prometheus text exposition, which run once per scrape or `stats`
call, not per increment.

Run: .venv/bin/python benchmarks/metrics.py [--runs 7] [--number 1000000]
     [--out benchmarks/results/metrics.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

from swarmnode.metrics import Registry


def per_call_ns(stmt: Callable[[], object], number: int, runs: int) -> float:
    times = timeit.repeat(stmt, number=number, repeat=runs)
    return statistics.median(times) / number * 1e9


def node_shaped_registry() -> Registry:
    """A few dozen series of every kind, as a node will declare: counters, gauges, labelled
    histograms."""
    registry = Registry()
    for layer in ("gossip", "antientropy", "membership", "transport", "writer", "api"):
        for what in ("messages_sent", "messages_received", "bytes_sent", "bytes_received"):
            registry.counter(
                f"swarmnode_{layer}_{what}_total", f"{layer} {what}.", stats=(layer, what)
            ).inc(1234)
        registry.gauge(
            f"swarmnode_{layer}_queue_depth", f"{layer} queue.", fn=lambda: 7, stats=(layer, "q")
        )
    codes = registry.counter(
        "swarmnode_merges_rejected_total",
        "Rejected merges.",
        labels=("code",),
        stats=("counters", "merge_rejected_{code}"),
    )
    for code in ("clock_skew", "too_large", "wrong_type", "bad_request"):
        codes.labels(code).inc(3)
    latency = registry.histogram(
        "swarmnode_request_duration_seconds",
        "Request latency.",
        labels=("op",),
        stats=("api", "latency", "{op}"),
    )
    for op in ("get", "put", "delete", "list", "vsearch", "incr"):
        for i in range(100):
            latency.labels(op).observe(i / 10_000)
    registry.gauge(
        "swarmnode_members",
        "Members by state.",
        labels=("state",),
        fn=lambda: {"alive": 24, "suspect": 1, "dead": 2, "left": 0},
        stats=("members",),
    )
    return registry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--number", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/metrics.md"))
    args = parser.parse_args()
    n, runs = args.number, args.runs

    registry = Registry()
    counter = registry.counter("swarmnode_a_total", "a")
    labelled = registry.counter("swarmnode_b_total", "b", labels=("op",))
    bound = labelled.labels("get")
    gauge = registry.gauge("swarmnode_c", "c")
    histogram = registry.histogram("swarmnode_d_seconds", "d")
    checked = Registry(check_threads=True).counter("swarmnode_e_total", "e")
    stats = {"deltas_sent": 0}
    counters: dict[str, int] = {}
    code = "clock_skew"

    def dict_constant() -> None:
        stats["deltas_sent"] += 1

    def dict_fstring() -> None:
        key = f"merge_rejected_{code}"
        counters[key] = counters.get(key, 0) + 1

    cases: list[tuple[str, Callable[[], object]]] = [
        ("baseline: `stats['deltas_sent'] += 1`", dict_constant),
        ("baseline: `counters[f'merge_rejected_{code}'] += 1`", dict_fstring),
        ("`counter.inc()` (unlabelled)", counter.inc),
        ("`child.inc()` (labelled, child bound once)", bound.inc),
        ("`family.labels('get').inc()` (lookup per call)", lambda: labelled.labels("get").inc()),
        ("`gauge.set(3)`", lambda: gauge.set(3)),
        ("`histogram.observe(0.003)` (16 buckets)", lambda: histogram.observe(0.003)),
        ("`counter.inc()` with `check_threads=True`", checked.inc),
    ]
    rows = []
    base = None
    for name, stmt in cases:
        ns = per_call_ns(stmt, n, runs)
        base = base if base is not None else ns
        rows.append((name, ns, ns / base))
        print(f"{name}: {ns:.0f} ns", file=sys.stderr)

    increments = {name: ns for name, ns, _ in rows if name.startswith(("`counter", "`child"))}
    worst = max(ns for name, ns in increments.items() if "check_threads" not in name)
    verdict = (
        f"Met (below 500 ns): the slowest plain increment took {worst:.0f} ns."
        if worst < 500
        else f"Not met (500 ns or more): the slowest plain increment took {worst:.0f} ns."
    )

    node = node_shaped_registry()
    series = sum(len(m.samples()) for m in node.metrics())
    render = [
        ("`snapshot()` (stats tree)", node.snapshot),
        ("`exposition()` (Prometheus text)", node.exposition),
    ]
    render_rows = [(name, per_call_ns(fn, 200, runs) / 1000) for name, fn in render]

    load = os.getloadavg()
    lines = [
        "# Metrics: the cost of an increment",
        "",
        "`benchmarks/metrics.py`: time of one call, median of "
        f"{runs} repeats of {n:,} calls, one process; host {platform.node() or 'unknown'}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} at the end (the machine is shared: absolute figures move with it, "
        "the ratios less).",
        "",
        "| operation | ns per call | × dict baseline |",
        "|---|---:|---:|",
        *[f"| {name} | {ns:.0f} | {ratio:.2f} |" for name, ns, ratio in rows],
        "",
        f"Aim: an increment well under a microsecond. {verdict}",
        "",
        f"Rendering a registry shaped like a node's ({len(node.metrics())} metrics, "
        f"{series} series; per scrape or `stats` call, not per increment):",
        "",
        "| rendering | µs per call |",
        "|---|---:|",
        *[f"| {name} | {us:.0f} |" for name, us in render_rows],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
