"""kill -9 in the middle of writes, again and again: no acknowledged write may be lost.

Three `swarmnode run` processes in network namespaces. Each round picks a
victim, starts clients writing fresh keys to it (and one client writing to
another node), and sends the victim SIGKILL at a random moment while writes
are in flight. Then:

1. the victim is cut off from its peers (nftables) and started again on its
   data directory, so what it serves comes from its own disk alone; every
   write it acknowledged before the kill must be there, with its value;
2. the cut is healed, and every write acknowledged in the round (by any
   node) must reach all three nodes;
3. every 100 rounds, and at the end, every write acknowledged so far is
   checked on every node.

Writes whose outcome was unknown (the connection died with the request in
flight) may be present or not; the report counts which.

    python simulations/chaos_kill_rounds.py --rounds 1000    # as root

Writes results/chaos_kill_rounds.md, .json and .png.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmnode.chaos.cluster import ChaosCluster
from swarmnode.chaos.network import BridgeNetwork, have_root, sweep_stale
from swarmnode.chaos.run import listing
from swarmnode.chaos.workload import classify_error
from swarmnode.client import Client
from swarmnode.errors import SwarmError

RESULTS = Path(__file__).resolve().parent / "results"
NS = "kills"
WAIT = 120.0


@dataclass
class Round:
    index: int
    victim: int
    acked_victim: dict[str, int] = field(default_factory=dict)
    acked_other: dict[str, int] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    restart_s: float = 0.0
    converge_s: float = 0.0
    lost_on_disk: list[str] = field(default_factory=list)
    lost_after_heal: list[str] = field(default_factory=list)
    unknown_present: int = 0


def writer(
    socket: Path, prefix: str, stop: threading.Event, rnd: Round, lock: threading.Lock, mine: bool
) -> None:
    client = Client(socket, timeout=5.0)
    j = 0
    try:
        while not stop.is_set():
            key, value = f"{prefix}-{j}", j
            j += 1
            try:
                client.put(NS, key, value)
            except SwarmError as exc:
                with lock:
                    if classify_error(exc, writes=True) == "info":
                        rnd.unknown[key] = value
                    else:
                        rnd.failed += 1
                if "cannot reach" in exc.message:
                    return
                continue
            with lock:
                (rnd.acked_victim if mine else rnd.acked_other)[key] = value
    finally:
        client.close()


def values_on(cluster: ChaosCluster, node: int, prefix: str | None = None) -> dict[str, Any]:
    client = cluster.client(node, timeout=30.0)
    if prefix is None:
        items = listing(client, NS)
        return {k: v.get("value") for k, v in items.items()}
    out: dict[str, Any] = {}
    cursor = None
    while True:
        args: dict[str, Any] = {"ns": NS, "values": True, "limit": 1000, "prefix": prefix}
        if cursor:
            args["cursor"] = cursor
        page = client.call("list", **args)
        out.update({i["key"]: i.get("value") for i in page["items"]})
        cursor = page.get("cursor")
        if not cursor:
            return out


def wait_present(cluster: ChaosCluster, want: dict[str, int], prefix: str | None) -> list[str]:
    """Poll until every node holds every wanted key with its value; what is missing if not."""
    deadline = time.monotonic() + WAIT
    missing: list[str] = []
    while time.monotonic() < deadline:
        missing = []
        try:
            for node in range(len(cluster)):
                have = values_on(cluster, node, prefix)
                missing += [f"n{node}:{k}" for k, v in want.items() if have.get(k) != v]
        except SwarmError as exc:
            missing = [f"read failed: {exc.message}"]
        if not missing:
            return []
        time.sleep(0.2)
    return missing


def one_round(cluster: ChaosCluster, r: int, rng: random.Random) -> Round:
    n = len(cluster)
    victim = rng.randrange(n)
    other = rng.choice([i for i in range(n) if i != victim])
    rnd = Round(r, victim)
    lock = threading.Lock()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=writer,
            args=(cluster.nodes[victim].socket, f"k{r}-v{t}", stop, rnd, lock, True),
        )
        for t in range(2)
    ]
    threads.append(
        threading.Thread(
            target=writer, args=(cluster.nodes[other].socket, f"k{r}-o", stop, rnd, lock, False)
        )
    )
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.05, 0.4))
    cluster.kill(victim)
    time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(30)
    others = [i for i in range(n) if i != victim]
    cluster.network.set_grudges({victim: set(others), **{i: {victim} for i in others}})
    started = time.monotonic()
    cluster.restart(victim)
    rnd.restart_s = time.monotonic() - started
    on_disk = values_on(cluster, victim, f"k{r}-")
    rnd.lost_on_disk = [k for k, v in rnd.acked_victim.items() if on_disk.get(k) != v]
    cluster.network.heal()
    started = time.monotonic()
    want = rnd.acked_victim | rnd.acked_other
    rnd.lost_after_heal = wait_present(cluster, want, f"k{r}-")
    rnd.converge_s = time.monotonic() - started
    final = values_on(cluster, victim, f"k{r}-")
    rnd.unknown_present = sum(1 for k in rnd.unknown if k in final)
    return rnd


def plot(rounds: list[Round], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    xs = [r.index for r in rounds]
    a.plot(xs, [r.restart_s for r in rounds], ".", ms=2, label="restart until serving")
    a.plot(xs, [r.converge_s for r in rounds], ".", ms=2, label="heal until all writes everywhere")
    a.set_ylabel("seconds")
    a.legend()
    b.plot(xs, [len(r.acked_victim) for r in rounds], ".", ms=2, label="acked by the victim")
    b.plot(xs, [len(r.unknown) for r in rounds], ".", ms=2, label="unknown outcome")
    b.set_ylabel("writes per round")
    b.set_xlabel("round")
    b.legend()
    a.set_title("kill -9 rounds: 3 nodes, SIGKILL mid-write, restart on the same data")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if not have_root():
        print("needs root (network namespaces and nftables)", file=sys.stderr)
        return 2
    sweep_stale()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="snkr-", dir="/tmp"))
    network = BridgeNetwork(3).create()
    cluster = ChaosCluster(base, network)
    rounds: list[Round] = []
    full_checks: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        cluster.start()
        every: dict[str, int] = {}
        for r in range(args.rounds):
            rnd = one_round(cluster, r, rng)
            rounds.append(rnd)
            every |= rnd.acked_victim | rnd.acked_other
            if (r + 1) % 100 == 0 or r + 1 == args.rounds:
                started = time.monotonic()
                missing = wait_present(cluster, every, None)
                full_checks.append(
                    {
                        "after_round": r + 1,
                        "acked": len(every),
                        "missing": missing[:20],
                        "seconds": round(time.monotonic() - started, 2),
                    }
                )
            if (r + 1) % 10 == 0:
                lost = sum(len(x.lost_on_disk) + len(x.lost_after_heal) for x in rounds)
                print(
                    f"round {r + 1}/{args.rounds}: {len(every)} acknowledged writes, "
                    f"{lost} lost, {time.monotonic() - began:.0f}s",
                    flush=True,
                )
    finally:
        cluster.close()
        network.close()
        shutil.rmtree(base, ignore_errors=True)
    lost_disk = [k for r in rounds for k in r.lost_on_disk]
    lost_heal = [k for r in rounds for k in r.lost_after_heal]
    missing_full = [c for c in full_checks if c["missing"]]
    acked_victim = sum(len(r.acked_victim) for r in rounds)
    acked = acked_victim + sum(len(r.acked_other) for r in rounds)
    unknown = sum(len(r.unknown) for r in rounds)
    unknown_present = sum(r.unknown_present for r in rounds)
    ok = not lost_disk and not lost_heal and not missing_full
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rounds, args.out / "chaos_kill_rounds.png")
    data = {
        "ok": ok,
        "rounds": len(rounds),
        "seed": args.seed,
        "seconds": round(time.monotonic() - began, 1),
        "acked_writes": acked,
        "acked_by_victims": acked_victim,
        "unknown_writes": unknown,
        "unknown_present_after": unknown_present,
        "failed_writes": sum(r.failed for r in rounds),
        "lost_on_disk": lost_disk[:50],
        "lost_after_heal": lost_heal[:50],
        "full_checks": full_checks,
        "restart_s": {
            "median": statistics.median(r.restart_s for r in rounds),
            "max": max(r.restart_s for r in rounds),
        },
        "converge_s": {
            "median": statistics.median(r.converge_s for r in rounds),
            "max": max(r.converge_s for r in rounds),
        },
    }
    (args.out / "chaos_kill_rounds.json").write_text(json.dumps(data, indent=2) + "\n")
    md = [
        f"# kill -9 rounds: {len(rounds)} rounds, {'PASS' if ok else 'FAIL'}",
        "",
        f"Command: `python simulations/chaos_kill_rounds.py --rounds {args.rounds} "
        f"--seed {args.seed}` (as root), {data['seconds'] / 60:.0f} minutes on the shared "
        "2-core machine.",
        "",
        "Three real nodes in network namespaces; each round SIGKILLs one of them while "
        "clients write fresh keys to it, restarts it cut off from its peers (so it serves "
        "only its own disk), checks every write it acknowledged, heals, and waits until "
        "every write acknowledged in the round is on all three nodes. Every 100 rounds "
        "every write acknowledged so far is checked on every node.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| acknowledged writes | {acked} ({acked_victim} by the node then killed) |",
        f"| acknowledged writes missing from the victim's own disk after restart | "
        f"{len(lost_disk)} |",
        f"| acknowledged writes not on every node after healing | {len(lost_heal)} |",
        f"| full checks (every write so far, every node) with something missing | "
        f"{len(missing_full)} of {len(full_checks)} |",
        f"| writes of unknown outcome (connection died mid-request) | {unknown}, of which "
        f"{unknown_present} took effect |",
        f"| writes refused (node down, never sent) | {data['failed_writes']} |",
        f"| restart until serving, median / max s | {data['restart_s']['median']:.2f} / "
        f"{data['restart_s']['max']:.2f} |",
        f"| heal until the round's writes are everywhere, median / max s | "
        f"{data['converge_s']['median']:.2f} / {data['converge_s']['max']:.2f} |",
        "",
        "![rounds](chaos_kill_rounds.png)",
        "",
    ]
    if not ok:
        md += ["Lost:", "", *[f"- {k}" for k in (lost_disk + lost_heal)[:50]]]
    (args.out / "chaos_kill_rounds.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
