"""Consensus figures with real node processes: CAS throughput and latency, and the time
from a conflict to its decision on every node (issue 12).

Each run starts fresh `swarmnode run` processes on loopback (replication_procs.py:
one cluster key, fsync on, the chosen timer profile), waits until the consensus
group has formed with every node a voter (3 or 5), then:

1. Throughput and latency. C clients, spread evenly over the nodes' Unix
   sockets (so most reach a follower, which forwards to the leader), each in a
   closed loop for `--seconds`: `cas` of a key of its own from the value it last
   set to the next (every swap succeeds: this is the cost of one committed
   command, not of contention), or, in the same run, the baselines: a plain
   `put` (a CRDT write: one local fsync, then gossip) and a linearizable `get`
   (ReadIndex through the leader). Throughput is completed operations per
   second of the whole cluster; p50 and p99 are the clients' request latencies.
2. Time to decision. Two clients on two different nodes write the same key of
   the `decisions` namespace (policy consensus) at the same moment; then every
   node is polled (`get`, every 5 ms) until all of them show the same decided
   version with no conflict. The figure is the time from the later write's
   acknowledgement to the moment the last node showed the decision; it
   includes gossip of the writes, the node's wait before proposing (three
   gossip intervals, so a proposal covers every sibling), the Raft commit, and
   each node writing the decision it applied. Pairs whose writes did not meet
   as siblings (one replica saw the other's write first) are counted, not
   timed.

Every figure is the median over `--runs` fresh clusters. The host is shared and
has 2 cores: 5 node processes and the clients compete for them, and the tables
say how busy it was.

    .venv/bin/python benchmarks/consensus.py                     # 3 and 5 nodes, 3 runs
    .venv/bin/python benchmarks/consensus.py --sizes 3 --runs 1 --seconds 3 --conflicts 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from replication import host_line, med, ms, pct, table
from replication_procs import CpuMeter, ProcCluster

from swarmnode.errors import NotFound, SwarmError

RESULTS = Path(__file__).resolve().parent / "results"
NS_CAS = "decisions"
NS_PUT = "bench"
GROUP_TIMEOUT = 120.0
DECISION_TIMEOUT = 30.0
POLL = 0.005
KINDS = ("put", "cas", "get_linearizable")


@dataclass
class LoadResult:
    kind: str
    size: int
    clients: int
    ops: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "size": self.size,
            "clients": self.clients,
            "ops": self.ops,
            "errors": self.errors,
            "throughput": self.throughput,
            "p50": pct(self.latencies, 0.5),
            "p99": pct(self.latencies, 0.99),
            "cpu": self.cpu,
        }


@dataclass
class DecisionResult:
    size: int
    times: list[float] = field(default_factory=list)
    """Seconds from the later write's acknowledgement to the decision on every node."""
    from_send: list[float] = field(default_factory=list)
    no_conflict: int = 0
    timeouts: int = 0


async def wait_group(cluster: ProcCluster, voters: int) -> float:
    """Until one leader and `voters` voters on every node; returns the seconds it took."""
    started = time.monotonic()
    while True:
        views = [s.get("consensus") or {} for s in await cluster.stats()]
        leaders = [v for v in views if v.get("role") == "leader"]
        if len(leaders) == 1 and all(len(v.get("voters", [])) == voters for v in views):
            lead = leaders[0]
            if all(v.get("applied", -1) >= lead.get("commit", 0) for v in views):
                return time.monotonic() - started
        if time.monotonic() - started > GROUP_TIMEOUT:
            raise RuntimeError(f"no group of {voters} voters after {GROUP_TIMEOUT:g}s: {views}")
        await asyncio.sleep(0.1)


async def load(
    cluster: ProcCluster, kind: str, clients: int, seconds: float, tag: str
) -> LoadResult:
    """`clients` closed loops of `kind` for `seconds`, spread over every node (the reads
    read the keys the cas loops of the same `tag` swapped)."""
    size = len(cluster)
    result = LoadResult(kind, size, clients)
    stop_at = time.monotonic() + seconds
    meter = CpuMeter(cluster.pids())

    async def client(index: int) -> None:
        c = cluster.client(index % size)
        key = f"{tag}-{index}"
        last: Any = None
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            started = time.monotonic()
            try:
                if kind == "put":
                    await c.put(NS_PUT, key, n)
                elif kind == "cas":
                    args = {"ns": NS_CAS, "key": key, "value": n}
                    if last is not None:
                        args["expected"] = last
                    reply = await c.call("cas", **args)
                    last = n if reply["ok"] else reply.get("value")
                else:
                    with contextlib.suppress(NotFound):
                        await c.call("get", ns=NS_CAS, key=key, linearizable=True)
            except SwarmError:
                result.errors += 1
                continue
            result.latencies.append(time.monotonic() - started)
            result.ops += 1

    began = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    result.seconds = time.monotonic() - began
    result.cpu = meter.stop()
    return result


async def decisions(cluster: ProcCluster, conflicts: int, tag: str) -> DecisionResult:
    size = len(cluster)
    out = DecisionResult(size)
    for n in range(conflicts):
        a, b = n % size, (n + 1) % size
        key = f"{tag}-conflict-{n}"
        sent = time.monotonic()

        async def write(node: int, key: str, value: str) -> float:
            await cluster.client(node).put(NS_CAS, key, value)
            return time.monotonic()

        acks = await asyncio.gather(write(a, key, f"from {a}"), write(b, key, f"from {b}"))
        acked = max(acks)
        outcome = await _until_agreed(cluster, key)
        if outcome is None:
            out.timeouts += 1
        elif not outcome[1]:
            out.no_conflict += 1
        else:
            out.times.append(outcome[0] - acked)
            out.from_send.append(outcome[0] - sent)
        await asyncio.sleep(0.2)
    return out


async def _until_agreed(cluster: ProcCluster, key: str) -> tuple[float, bool] | None:
    """(when every node showed one version and no conflict, whether it was a decision).

    Both writes were acknowledged before the first poll, so one undecided value on every
    node means one write had seen the other: they never were siblings."""
    deadline = time.monotonic() + DECISION_TIMEOUT
    while time.monotonic() < deadline:
        views = await asyncio.gather(
            *(cluster.client(i).get(NS_CAS, key) for i in range(len(cluster))),
            return_exceptions=True,
        )
        now = time.monotonic()
        if all(isinstance(v, dict) and not v.get("conflict") for v in views):
            values = {json.dumps(v["value"]) for v in views}  # type: ignore[index]
            decided = {v.get("decided") for v in views}  # type: ignore[union-attr]
            if len(values) == 1 and len(decided) == 1:
                return now, None not in decided
        await asyncio.sleep(POLL)
    return None


async def one_run(
    size: int, profile: str, clients: Sequence[int], seconds: float, conflicts: int, run: int
) -> tuple[list[LoadResult], DecisionResult, float]:
    cluster = await ProcCluster.start(size, profile)
    try:
        formed = await wait_group(cluster, min(size, 5))
        loads = []
        for c in clients:
            for kind in KINDS:
                r = await load(cluster, kind, c, seconds, f"r{run}-{c}")
                print(
                    f"<!-- N={size} run {run + 1} {kind} x{c}: {r.throughput:,.0f}/s "
                    f"p50 {ms(pct(r.latencies, 0.5))} p99 {ms(pct(r.latencies, 0.99))} "
                    f"errors {r.errors} busy {r.cpu['machine_busy']:.0%} -->",
                    flush=True,
                )
                loads.append(r)
        decided = await decisions(cluster, conflicts, f"r{run}")
        print(
            f"<!-- N={size} run {run + 1} decisions: median {ms(med(decided.times))} "
            f"({len(decided.times)} timed, {decided.no_conflict} without conflict, "
            f"{decided.timeouts} timeouts) -->",
            flush=True,
        )
        return loads, decided, formed
    finally:
        await cluster.close()


def load_table(loads: list[LoadResult], sizes: Sequence[int], clients: Sequence[int]) -> str:
    rows = []
    for size in sizes:
        for c in clients:
            cells: list[Any] = [size, c]
            for kind in KINDS:
                mine = [r for r in loads if (r.size, r.clients, r.kind) == (size, c, kind)]
                cells += [
                    f"{med([r.throughput for r in mine]):,.0f}",
                    ms(med([pct(r.latencies, 0.5) for r in mine])).replace(" ms", ""),
                    ms(med([pct(r.latencies, 0.99) for r in mine])).replace(" ms", ""),
                ]
            cas = [r for r in loads if (r.size, r.clients, r.kind) == (size, c, "cas")]
            put = [r for r in loads if (r.size, r.clients, r.kind) == (size, c, "put")]
            ratio = med([r.throughput for r in cas]) / max(1e-9, med([r.throughput for r in put]))
            cells.append(f"{ratio:.2f}")
            cells.append(f"{med([r.cpu['machine_busy'] for r in cas]):.0%}")
            rows.append(cells)
    headers = ["nodes", "clients"]
    for kind in ("put (baseline)", "cas", "linearizable get"):
        headers += [f"{kind} ops/s", "p50 ms", "p99 ms"]
    headers += ["cas / put throughput", "host busy during cas"]
    return table(headers, rows)


def decision_table(results: list[DecisionResult], sizes: Sequence[int]) -> str:
    rows = []
    for size in sizes:
        mine = [r for r in results if r.size == size]
        times = [t for r in mine for t in r.times]
        sends = [t for r in mine for t in r.from_send]
        per_run = [med(r.times) for r in mine if r.times]
        rows.append(
            [
                size,
                len(times),
                sum(r.no_conflict for r in mine),
                sum(r.timeouts for r in mine),
                ms(med(per_run)),
                ms(pct(times, 0.9)),
                ms(max(times)) if times else "-",
                ms(med(sends)),
            ]
        )
    return table(
        [
            "nodes",
            "conflicts timed",
            "writes that did not conflict",
            "not decided in 30 s",
            "median (of run medians)",
            "p90 (all)",
            "max",
            "median from sending the writes",
        ],
        rows,
    )


def plot(loads: list[LoadResult], decided: list[DecisionResult], sizes: Sequence[int]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
    for size in sizes:
        for kind, style in (("cas", "-o"), ("put", "--s"), ("get_linearizable", ":^")):
            mine = [r for r in loads if r.size == size and r.kind == kind]
            xs = sorted({r.clients for r in mine})
            tput = [med([r.throughput for r in mine if r.clients == x]) for x in xs]
            p99 = [med([pct(r.latencies, 0.99) for r in mine if r.clients == x]) * 1000 for x in xs]
            ax1.plot(xs, tput, style, label=f"{kind}, {size} nodes")
            ax2.plot(xs, p99, style, label=f"{kind}, {size} nodes")
        times = sorted(t * 1000 for r in decided if r.size == size for t in r.times)
        if times:
            ax3.step(
                times, [(i + 1) / len(times) for i in range(len(times))], label=f"{size} nodes"
            )
    ax1.set(xscale="log", xlabel="concurrent clients", ylabel="ops/s (whole cluster)")
    ax1.set_title("throughput")
    ax2.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="p99 latency (ms)")
    ax2.set_title("p99 latency")
    ax3.set(xlabel="ms from the later write's ack", ylabel="share of conflicts")
    ax3.set_title("conflict to decision on every node")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = RESULTS / "consensus.png"
    fig.savefig(path, dpi=110)
    return path


async def main_async(args: argparse.Namespace) -> None:
    start_line = host_line()
    print(start_line, flush=True)
    loads: list[LoadResult] = []
    decided: list[DecisionResult] = []
    formed: list[tuple[int, float]] = []
    started = time.monotonic()
    for size in args.sizes:
        for run in range(args.runs):
            lr, dr, f = await one_run(
                size, args.profile, args.clients, args.seconds, args.conflicts, run
            )
            loads += lr
            decided.append(dr)
            formed.append((size, f))
    wall = time.monotonic() - started
    end_line = host_line().replace("at start", "at the end")
    cmd = (
        f"benchmarks/consensus.py --sizes {' '.join(map(str, args.sizes))} --runs {args.runs} "
        f"--clients {' '.join(map(str, args.clients))} --seconds {args.seconds:g} "
        f"--conflicts {args.conflicts} --profile {args.profile}"
    )
    busy = statistics.median(r.cpu["machine_busy"] for r in loads)
    text = "\n".join(
        [
            "# Consensus: CAS throughput and latency, time from a conflict to its decision",
            "",
            f"`PYTHONPATH=. .venv/bin/python {cmd}`, {wall / 60:.0f} min wall.",
            "",
            start_line,
            end_line,
            f"Median share of the machine busy during the loads: {busy:.0%}.",
            "",
            "Real `swarmnode run` processes on loopback, profile "
            f"`{args.profile}`, fsync on, every node a voter; clients spread evenly over the "
            "nodes' Unix sockets, so most requests reach a follower and are forwarded. Every "
            f"figure is the median of {args.runs} fresh clusters. See the module docstring of "
            "`benchmarks/consensus.py` for exactly what is timed.",
            "",
            "## Throughput and latency",
            "",
            f"Closed loops of {args.seconds:g} s per cell; `cas` swaps a key of the client's own "
            "(every swap succeeds), `put` is the CRDT write measured in the same run as the "
            "baseline, `linearizable get` is a ReadIndex read through the leader.",
            "",
            load_table(loads, args.sizes, args.clients),
            "",
            "## Time from a conflict to its decision on every node",
            "",
            f"{args.conflicts} conflicts per cluster: two nodes write one key of `decisions` at "
            "once; every node polled every 5 ms.",
            "",
            decision_table(decided, args.sizes),
            "",
            "Group formation (start of the processes excluded): "
            + ", ".join(f"{s} nodes {t:.1f} s" for s, t in formed)
            + ".",
            "",
            "![throughput, latency and time to decision](consensus.png)",
        ]
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "consensus.md").write_text(text + "\n")
    raw = {
        "command": cmd,
        "host": [start_line, end_line],
        "loads": [r.summary() for r in loads],
        "decisions": [asdict(d) for d in decided],
        "formed": formed,
    }
    (RESULTS / "consensus.json").write_text(json.dumps(raw, indent=1) + "\n")
    plot(loads, decided, args.sizes)
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[3, 5])
    p.add_argument("--runs", type=int, default=3, help="fresh clusters per size")
    p.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32, 64])
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per load cell")
    p.add_argument("--conflicts", type=int, default=20, help="conflicts timed per cluster")
    p.add_argument("--profile", default="lan", choices=["lan", "local"])
    args = p.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
