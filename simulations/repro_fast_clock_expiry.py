"""Reproduction: one node with a fast clock expires TTL entries early on every node.

Found by `python -m swarmnode.sim --scenario mixed --seed 5 --nodes 5 --ttl-share 0.5`
(node 0 runs 2.4 s ahead; every other replica lost a register about 2 s before
its expiry by its own clock). The smallest case: two nodes, node 1's wall
clock 3 s ahead (beyond the 500 ms max offset). Node 0 writes a key with a
5 s TTL. Node 1's sweeper strips the entry when its clock reaches the expiry,
2 s after the write in real time; the stripped register (same timestamp,
`deleted` payload, which wins every join) reaches node 0 by anti-entropy, and
node 0 stops serving the value with 3 s of its TTL left by its own clock. The
max offset guards the HLC against timestamps from the future, but a stripped
state carries the write's old timestamp, so nothing guards this; a node whose
clock is an hour ahead would empty every TTL'd namespace of the cluster.

Exit status 1 while the bug is present, 0 once it is fixed.

    python simulations/repro_fast_clock_expiry.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from swarmnode.config import Config
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.storage.ops import Put


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(ClusterConfig(seed=1, nodes=2), Config.for_profile("local"), Path(tmp))
        try:
            c.start()
            c.run_for(2.0)
            fast, writer = c.nodes[1], c.nodes[0]
            c.set_skew(fast.index, 3.0)
            results = []
            c.call(
                writer.index, lambda node: node.write(Put("sim", "k", "v", ttl=5.0), results.append)
            )
            expires_at = results[0].value["expires_at"]
            c.run_for(2.5)
            reg = writer.store.get("sim", "k").reg
            left_ms = expires_at - c.wall_ms(writer)
            print(
                f"node 0: {left_ms} ms of TTL left by its own clock; register visible: "
                f"{reg.visible(c.wall_ms(writer))} (deleted={reg.deleted})"
            )
            if not reg.visible(c.wall_ms(writer)) and left_ms > 500:
                print("BUG: expired early by a peer whose clock is beyond the max offset")
                return 1
            print("ok: the value stays until its own expiry")
            return 0
        finally:
            c.close()


if __name__ == "__main__":
    sys.exit(main())
