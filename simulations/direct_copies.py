"""Three nodes on `lan` timers under loss: what `direct_copies` costs and what it leaves.

With 3 nodes and fanout 3 every gossip round reaches both peers, so a delta's
copies to the same peer only cover datagram loss (dissemination.py). Node 0
takes 500 puts of fresh keys at 1 ms intervals; every link drops the given
share of datagrams (gossip, SWIM, everything); anti-entropy is off (its
interval beyond the run), so whatever gossip misses stays missing. The figures:
deltas each peer received per write (copies it decoded) and (peer, write)
pairs still missing once gossip went quiet, which anti-entropy would have to
repair, summed over the seeds.

    python simulations/direct_copies.py
    python simulations/direct_copies.py --copies 1 2 3 --losses 0.1 0.2 --seeds 5
"""

from __future__ import annotations

import argparse
import dataclasses

from common import NS, cluster, formed, log, put, save_report, table, wait_for

from swarmnode.config import Config
from swarmnode.sim.network import LinkProfile

PUTS = 500


def run_case(copies: int, loss: float, seed: int) -> tuple[float, int]:
    """(deltas received per peer per write, (peer, write) pairs missing)."""
    config = Config.for_profile("lan")
    config.antientropy = dataclasses.replace(config.antientropy, interval=1e6)
    config.dissemination = dataclasses.replace(config.dissemination, direct_copies=copies)
    with cluster(3, seed, config=config) as c:
        wait_for(c, lambda: formed(c), limit=60.0)
        c.run_for(2.0)
        c.network.default = LinkProfile(latency=c.network.default.latency, loss=loss)
        before = [sn.node.dissemination.stats["deltas_received"] for sn in c.live()]
        for i in range(PUTS):
            put(c, 0, f"k{i}", i)
            c.run_for(0.001)
        wait_for(c, lambda: all(sn.node.dissemination.pending() == 0 for sn in c.live()), 30.0)
        c.run_for(1.0)
        after = [sn.node.dissemination.stats["deltas_received"] for sn in c.live()]
        received = sum(b - a for a, b in zip(before[1:], after[1:], strict=True))
        held = [sn.node.trees[NS].count() if NS in sn.node.trees else 0 for sn in c.live()]
        return received / (2 * PUTS), sum(PUTS - h for h in held[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--copies", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--losses", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    rows = []
    for copies in args.copies:
        for loss in args.losses:
            got = [run_case(copies, loss, seed) for seed in range(1, args.seeds + 1)]
            per_write = sum(r for r, _ in got) / len(got)
            missing = sum(m for _, m in got)
            pairs = 2 * PUTS * args.seeds
            log(f"copies {copies} loss {loss}: {per_write:.2f} received/write, {missing}/{pairs}")
            rows.append([copies, f"{loss:.0%}", f"{per_write:.2f}", f"{missing} / {pairs:,}"])
    header = ["direct_copies", "loss", "copies each peer received per write", "pairs missing"]
    text = (
        "# Direct copies under loss (3 nodes, lan timers, anti-entropy off)\n\n"
        f"`python simulations/direct_copies.py`: {PUTS} puts on node 0 per run, "
        f"{args.seeds} seeds per row; pairs missing are (peer, write) pairs gossip left "
        "to anti-entropy.\n\n" + table(header, rows)
    )
    print(text)
    save_report("direct_copies", text)


if __name__ == "__main__":
    main()
