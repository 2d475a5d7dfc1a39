"""Rolling crashes: nodes die one after another and come back; who notices, how fast, what is lost.

10 nodes on the production (`lan`) defaults with 1 ms links and 20 client
operations/s. Every `--every` seconds the next node (in a shuffled order) is
killed for `--down` seconds (its LMDB survives, its memory does not), so at
times two are down together. The run measures, per crash, how long until
every other node holds the dead node dead (against the bound the oracles
use), how long a restarted node takes to be seen alive by all again, false
deaths of live nodes, and at the end checks every oracle.

    python simulations/rolling_crashes.py
    python simulations/rolling_crashes.py --down 20 --every 15 --seed 3
"""

from __future__ import annotations

import argparse
import random
import statistics

from common import NS, cluster, formed, log, plt, save_json, save_plot, save_report, table, wait_for

from swarmnode.membership.state import MemberState
from swarmnode.sim import oracles
from swarmnode.sim.metrics import Sampler
from swarmnode.sim.nemesis import Nemesis
from swarmnode.sim.run import detection_bound
from swarmnode.sim.workload import Workload, WorkloadConfig

NODES = 10


def run(seed: int, every: float, down: float) -> dict:
    with cluster(NODES, seed) as c:
        wait_for(c, lambda: formed(c), limit=60.0)
        sampler = Sampler(c, step=0.5)
        nemesis = Nemesis(c, ("crash",), random.Random(f"{seed}/nemesis"))
        workload = Workload(c, WorkloadConfig(ns=NS, rate=20.0), random.Random(f"{seed}/load"))
        order = list(range(NODES))
        random.Random(f"{seed}/order").shuffle(order)
        start = c.now + 10.0
        end = start + every * NODES + down
        workload.schedule(c.now, end)
        rejoins: list[dict] = []

        def seen_alive_by_all(index: int) -> bool:
            node_id = c.nodes[index].node_id
            for sn in c.live():
                if sn.index == index:
                    continue
                info = sn.node.membership.member(node_id)
                if info is None or info.state is not MemberState.ALIVE:
                    return False
            return True

        def watch_rejoin(index: int, since: float) -> None:
            if seen_alive_by_all(index) or c.now - since > 120.0:
                rejoins.append({"node": index, "after": c.now - since})
            else:
                c.loop.call_later(0.1, watch_rejoin, index, since)

        def back(index: int) -> None:
            nemesis.restart(index)
            watch_rejoin(index, c.now)

        for k, index in enumerate(order):
            at = start + k * every
            c.loop.call_at(at, nemesis.crash, index)
            c.loop.call_at(at + down, back, index)
        c.run_until(end)
        settled = wait_for(c, lambda: formed(c) and oracles.converged(c), limit=120.0, step=0.1)
        bound = detection_bound(c.node_config, NODES)
        detections = nemesis.finish_detections()
        violations = (
            oracles.check_membership(c)
            + oracles.check_replicas(c)
            + oracles.check_history(c, workload.history, NS)
            + oracles.check_detection(detections, bound)
        )
        ops = workload.history.ops
        return {
            "seed": seed,
            "every": every,
            "down": down,
            "bound": bound,
            "detections": detections,
            "rejoins": rejoins,
            "settled_after_last_restart": settled,
            "ops": len(ops),
            "acked": sum(op.ok for op in ops),
            "unavailable": sum(op.status == "unavailable" for op in ops),
            "violations": violations,
            "timeline": [
                (s.t, s.live, s.alive_pairs, s.dead_pairs, s.distinct_roots)
                for s in sampler.samples
            ],
            "log": nemesis.log,
        }


def report(r: dict) -> None:
    det = [d["detected_after"] for d in r["detections"] if d["detected_after"] is not None]
    rej = [x["after"] for x in r["rejoins"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    t, live, alive, _dead, roots = zip(*r["timeline"], strict=True)
    ax = axes[0]
    ax.step(t, live, where="post", label="nodes up")
    ax.plot(t, [a * NODES for a in alive], label="agreement x 10 (live pairs seen alive)")
    ax.step(t, roots, where="post", label="distinct replica states")
    for d in r["detections"]:
        ax.axvline(d["at"], color="tab:red", lw=0.5, alpha=0.5)
    ax.set_xlabel("virtual time (s); red lines: crashes")
    ax.set_title(f"Rolling crashes: one every {r['every']:g} s, each down {r['down']:g} s")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1]
    ax.hist([det, rej], bins=12, label=["crash -> dead everywhere", "restart -> alive everywhere"])
    ax.axvline(r["bound"], color="k", ls="--", label=f"detection bound {r['bound']:.0f} s")
    ax.set_xlabel("seconds")
    ax.set_ylabel("events")
    ax.legend(fontsize=8)
    save_plot(fig, "rolling_crashes")

    def stats(xs: list[float]) -> str:
        if not xs:
            return "-"
        return f"median {statistics.median(xs):.1f} s, max {max(xs):.1f} s ({len(xs)} events)"

    rows = [
        ["crash -> declared dead by every other node", stats(det)],
        ["detection bound used by the oracle", f"{r['bound']:.1f} s"],
        ["restart -> seen alive by every other node", stats(rej)],
        [
            "operations / acknowledged / refused (node down)",
            f"{r['ops']} / {r['acked']} / {r['unavailable']}",
        ],
        [
            "all alive and identical, after the run's end",
            f"{r['settled_after_last_restart']:.1f} s",
        ],
        ["oracles", "pass" if not r["violations"] else f"FAIL: {r['violations'][:5]}"],
    ]
    save_report(
        "rolling_crashes",
        f"""# Rolling crashes

{NODES} nodes, `lan` defaults, 1 ms links, 20 client operations/s. Every
{r["every"]:g} s the next node is killed (memory lost, LMDB kept) and restarted
{r["down"]:g} s later. An operation sent to a node that is down counts as
refused; every acknowledged one must survive.

{table(["measure", "value"], rows)}

A crash is detected when some node's probe goes unanswered (each node probes
one member per second), then the suspicion runs its Lifeguard timeout
(4 s when several members confirm it, up to 24 s for a lone accuser) and the
dead fact spreads by gossip. A restarted node keeps its id and data and
refutes its death with a higher incarnation.

![rolling crashes](rolling_crashes.png)
""",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--every", type=float, default=30.0)
    p.add_argument("--down", type=float, default=45.0)
    args = p.parse_args()
    r = run(args.seed, args.every, args.down)
    log(f"detections {r['detections']}\nrejoins {r['rejoins']}\nviolations {r['violations'][:5]}")
    save_json("rolling_crashes", r)
    report(r)


if __name__ == "__main__":
    main()
