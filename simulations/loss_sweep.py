"""Lossy network sweep: propagation, traffic and false failure detection from 0 to 40% loss.

10 nodes on the production (`lan`) defaults, links with 1 ms median latency
(long-tailed) that drop the given share of datagrams, in both directions, for
60 s of load: 20 client operations/s of every kind (checked by the oracles at
the end) plus 5 writes/s of fresh keys whose propagation is timed from
acknowledgement until every node holds them. Gossip is fire and forget, so
what loss costs shows as the tail of propagation (values that wait for an
anti-entropy round) and as live nodes wrongly declared dead.

    python simulations/loss_sweep.py
    python simulations/loss_sweep.py --losses 0 0.2 0.4 --seed 2
"""

from __future__ import annotations

import argparse
import math
import random

from common import (
    NS,
    cluster,
    formed,
    log,
    plt,
    put,
    save_json,
    save_plot,
    save_report,
    table,
    wait_for,
)

from swarmnode.config import Config
from swarmnode.sim import oracles
from swarmnode.sim.metrics import Sampler, Visibility, summarize
from swarmnode.sim.network import Latency, LinkProfile
from swarmnode.sim.workload import Workload, WorkloadConfig

NODES = 10
LOAD = 60.0
_LAN = Config.for_profile("lan")
LIMIT = _LAN.dissemination.retransmit_mult * math.ceil(math.log10(NODES + 1))
AE_INTERVAL = _LAN.antientropy.interval


def miss(loss: float) -> float:
    """Chance that a node misses every gossiped copy of a delta at this loss."""
    return math.exp(-LIMIT * (1 - loss))


TIMED_RATE = 5.0


def run_case(loss: float, seed: int) -> dict:
    with cluster(NODES, seed, latency=Latency(0.001, 0.5, "lognormal")) as c:
        wait_for(c, lambda: formed(c), limit=60.0)
        c.run_for(5.0)
        base = c.network.default
        c.network.default = LinkProfile(latency=base.latency, loss=loss)
        sampler = Sampler(c, step=0.5)
        workload = Workload(c, WorkloadConfig(ns=NS, rate=20.0), random.Random(f"{seed}/load"))
        vis = Visibility(c, NS)
        rng = random.Random(f"{seed}/timed")
        t0 = c.now
        workload.schedule(t0, t0 + LOAD)
        timed = int(LOAD * TIMED_RATE)

        def timed_write(i: int) -> None:
            vis.track(f"t{i}")
            put(c, rng.randrange(NODES), f"t{i}", i)

        for i in range(timed):
            c.loop.call_at(t0 + i / TIMED_RATE, timed_write, i)
        m0, d0 = c.network.stats.messages, c.network.stats.dropped_loss
        c.run_until(t0 + LOAD)
        everyone = {sn.index for sn in c.nodes}
        wait_for(c, lambda: vis.complete(everyone), limit=120.0, step=0.1)
        sent = c.network.stats.messages - m0
        writes = timed + len(workload.history.acked())
        c.network.default = base
        healed = wait_for(c, lambda: formed(c) and oracles.converged(c), limit=120.0, step=0.1)
        violations = (
            oracles.check_membership(c)
            + oracles.check_replicas(c)
            + oracles.check_history(c, workload.history, NS)
        )
        during = [s for s in sampler.samples if t0 <= s.t <= t0 + LOAD]
        lat = [x for x in vis.latencies(everyone) if x is not None]
        return {
            "loss": loss,
            "seed": seed,
            "latency": summarize(lat),
            "undelivered": timed - len(lat),
            "messages_per_write": sent / writes,
            "dropped": c.network.stats.dropped_loss - d0,
            "false_dead_pair_seconds": sum(s.dead_pairs for s in during) * sampler.step,
            "min_agreement": min(s.alive_pairs for s in during),
            "mean_agreement": sum(s.alive_pairs for s in during) / len(during),
            "settled_after_loss_stopped": healed,
            "violations": violations,
        }


def report(rows: list[dict]) -> None:
    x = [r["loss"] * 100 for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(x, [r["latency"]["median"] * 1000 for r in rows], "o-", label="median")
    ax.plot(x, [r["latency"]["p99"] * 1000 for r in rows], "s--", label="p99")
    ax.plot(x, [r["latency"]["max"] * 1000 for r in rows], "^:", label="max")
    ax.set_yscale("log")
    ax.set_xlabel("datagram loss (%)")
    ax.set_ylabel("write -> visible on all 10 nodes (ms)")
    ax.set_title("Propagation under loss")
    ax.legend()
    ax = axes[1]
    ax.plot(x, [r["messages_per_write"] for r in rows], "o-")
    ax.set_xlabel("datagram loss (%)")
    ax.set_ylabel("messages sent per write (all protocols)")
    ax.set_title("Traffic per write")
    ax.set_ylim(bottom=0)
    ax = axes[2]
    ax.plot(x, [r["false_dead_pair_seconds"] for r in rows], "o-", label="live node held dead")
    ax.set_xlabel("datagram loss (%)")
    ax.set_ylabel("viewer x member x seconds")
    ax.set_title("False deaths during the lossy minute")
    ax2 = ax.twinx()
    ax2.plot(
        x, [r["mean_agreement"] for r in rows], "s--", color="tab:orange", label="mean agreement"
    )
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("share of live pairs seen alive")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="center left")
    save_plot(fig, "loss_sweep")

    body = table(
        [
            "loss",
            "median ms",
            "p99 ms",
            "max ms",
            "undelivered",
            "msgs/write",
            "false dead (pair-s)",
            "min agreement",
            "settled after loss stopped (s)",
            "oracles",
        ],
        [
            [
                f"{r['loss'] * 100:.0f}%",
                r["latency"]["median"] * 1000,
                r["latency"]["p99"] * 1000,
                r["latency"]["max"] * 1000,
                r["undelivered"],
                r["messages_per_write"],
                r["false_dead_pair_seconds"],
                r["min_agreement"],
                r["settled_after_loss_stopped"],
                "pass" if not r["violations"] else f"FAIL: {r['violations'][:3]}",
            ]
            for r in rows
        ],
    )
    save_report(
        "loss_sweep",
        f"""# Lossy network sweep

{NODES} nodes, `lan` defaults, 1 ms median one-way latency with a lognormal tail,
each datagram lost with the given probability, for {LOAD:g} s of load (20 client
operations/s, all kinds, plus {TIMED_RATE:g} timed writes/s of fresh keys). Latency:
acknowledgement to visible on all nodes. Messages per write: every message of
every protocol sent during the lossy minute, divided by the writes made.
"False dead (pair-s)": how long, summed over (viewer, member) pairs, live
members were held dead. After the loss stops the run waits until membership
and replicas agree, then checks every oracle.

{body}

Gossip sends each delta a fixed number of times whatever the loss, so traffic
per write stays flat while more writes miss some node: random peers send a
node each delta about `limit` = {LIMIT} times in all, so it misses every copy
with probability about exp(-{LIMIT} (1 - loss)): {miss(0):.0e} without loss,
{miss(0.2):.0e} at 20%, {miss(0.4):.0e} at 40%, per node and write. What gossip
misses waits for anti-entropy: one round every {AE_INTERVAL:g} s per node with a
random peer, and a round needs each message of its exchange (roots, answer,
transfer, states) to arrive, so under heavy loss some rounds fail and the tail
grows to seconds. SWIM's indirect probes and Lifeguard keep live nodes from
being declared dead until loss is very high.

![loss sweep](loss_sweep.png)
""",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--losses", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4]
    )
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rows = []
    for loss in args.losses:
        rows.append(run_case(loss, args.seed))
        r = rows[-1]
        log(
            f"loss {loss:.2f}: {r['latency']}, {r['messages_per_write']:.1f} msgs/write, "
            f"false dead {r['false_dead_pair_seconds']}, violations {r['violations'][:2]}"
        )
        save_json("loss_sweep", rows)
    report(rows)


if __name__ == "__main__":
    main()
