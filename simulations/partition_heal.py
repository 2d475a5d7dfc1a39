"""Partition and heal: how long membership and data take to come back together.

10 nodes on the production (`lan`) defaults with 1 ms links and a steady client
load (20 operations/s of puts, deletes, increments and set adds/removes on
every node) until the heal. After 20 s the network splits, either into halves or with one
node isolated, for 5 s to 2 minutes; both sides keep writing. After the heal
the run measures how long until every node sees every other alive again and
until all replicas are identical, then checks every oracle (no acknowledged
write lost, counters and sets as the history says).

    python simulations/partition_heal.py
    python simulations/partition_heal.py --durations 5 30 --seed 2
"""

from __future__ import annotations

import argparse
import random

from common import NS, cluster, formed, log, plt, save_json, save_plot, save_report, table, wait_for

from swarmnode.sim import oracles
from swarmnode.sim.metrics import Sampler
from swarmnode.sim.workload import Workload, WorkloadConfig

NODES = 10
START = 20.0
AFTER = 60.0


def run_case(kind: str, duration: float, seed: int) -> dict:
    with cluster(NODES, seed) as c:
        wait_for(c, lambda: formed(c), limit=60.0)
        sampler = Sampler(c, step=0.5)
        workload = Workload(c, WorkloadConfig(ns=NS, rate=20.0), random.Random(f"{seed}/load"))
        t_cut = START
        t_heal = START + duration
        workload.schedule(c.now, t_heal)
        addrs = [sn.addr for sn in c.nodes]
        rng = random.Random(f"{seed}/cut")
        if kind == "halves":
            order = addrs[:]
            rng.shuffle(order)
            groups = (order[: NODES // 2], order[NODES // 2 :])
        else:
            groups = ([rng.choice(addrs)],)
        c.run_until(t_cut)
        c.network.partition(*groups)
        c.run_until(t_heal)
        c.network.heal()
        membership = data_after = None
        while c.now - t_heal < AFTER and (membership is None or data_after is None):
            if membership is None and formed(c):
                membership = c.now - t_heal
            if data_after is None and oracles.converged(c):
                data_after = c.now - t_heal
            c.run_for(0.1)
        c.run_until(max(c.now, t_heal + 20.0))
        violations = (
            oracles.check_membership(c)
            + oracles.check_replicas(c)
            + oracles.check_history(c, workload.history, NS)
        )
        during = [op for op in workload.history.acked() if t_cut <= op.invoked < t_heal]
        return {
            "kind": kind,
            "duration": duration,
            "seed": seed,
            "membership_healed_after": membership,
            "data_converged_after": data_after,
            "writes_during_cut": len(during),
            "acked": len(workload.history.acked()),
            "violations": violations,
            "timeline": [
                (s.t, s.alive_pairs, s.distinct_roots, s.dead_pairs) for s in sampler.samples
            ],
            "t_cut": t_cut,
            "t_heal": t_heal,
        }


def report(rows: list[dict]) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    show = next((r for r in rows if r["kind"] == "halves" and r["duration"] == 30.0), rows[0])
    t, alive, roots, _ = zip(*show["timeline"], strict=True)
    ax = axes[0]
    ax.axvspan(show["t_cut"], show["t_heal"], color="tab:red", alpha=0.12, label="partition")
    ax.plot(t, alive, label="share of live pairs seen alive")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("membership agreement")
    ax2 = ax.twinx()
    ax2.step(t, roots, "tab:orange", where="post", label="distinct replica states")
    ax2.set_ylabel("distinct replica states (1 = converged)")
    ax.set_title(f"{show['kind']} partition of {show['duration']:g} s, 10 nodes")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(
        lines[0] + lines2[0],
        lines[1] + lines2[1],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        fontsize=8,
    )
    ax = axes[1]
    for kind, marker in (("halves", "o"), ("minority", "s")):
        sel = [r for r in rows if r["kind"] == kind]
        ax.plot(
            [r["duration"] for r in sel],
            [r["membership_healed_after"] for r in sel],
            marker + "-",
            label=f"{kind}: membership healed",
        )
        ax.plot(
            [r["duration"] for r in sel],
            [r["data_converged_after"] for r in sel],
            marker + "--",
            label=f"{kind}: replicas identical",
        )
    ax.set_xscale("log")
    ax.set_xlabel("partition length (s)")
    ax.set_ylabel("seconds after the heal")
    ax.set_title("Time to heal against partition length")
    ax.legend(fontsize=8)
    save_plot(fig, "partition_heal")

    body = table(
        [
            "split",
            "length (s)",
            "writes during cut",
            "membership healed after (s)",
            "replicas identical after (s)",
            "oracles",
        ],
        [
            [
                r["kind"],
                r["duration"],
                r["writes_during_cut"],
                r["membership_healed_after"],
                r["data_converged_after"],
                "pass" if not r["violations"] else f"FAIL: {r['violations'][:3]}",
            ]
            for r in rows
        ],
    )
    save_report(
        "partition_heal",
        f"""# Partition and heal

{NODES} nodes, `lan` defaults, 1 ms links, 20 client operations/s until the
heal. The network splits at t = {START:g} s (into halves, or one node isolated)
and heals after the given length; both sides keep serving writes. "Replicas
identical" is the first moment after the heal that every node's Merkle roots
agree. Every oracle is then
checked (no acknowledged write lost, counters, add-wins sets, membership).

{body}

Once a side holds the other dead, the halves meet again through the push-pull
each node sends one random dead member every `reconnect_interval` (10 s); so
membership heals anywhere from about one second to a couple of reconnect
intervals after the network does, depending on who picks whom. Data follows
the first contact within about a second: a member that reappears gets an
anti-entropy round at once, so replicas are usually identical before every
pair of nodes sees each other alive again.

![partition and heal](partition_heal.png)
""",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--durations", type=float, nargs="+", default=[5.0, 15.0, 30.0, 60.0, 120.0])
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rows = []
    for kind in ("halves", "minority"):
        for duration in args.durations:
            rows.append(run_case(kind, duration, args.seed))
            r = rows[-1]
            log(
                f"{kind} {duration:g}s: membership {r['membership_healed_after']}, "
                f"data {r['data_converged_after']}, violations {r['violations'][:2]}"
            )
    save_json("partition_heal", rows)
    report(rows)


if __name__ == "__main__":
    main()
