"""A peer whose clock runs ahead must not expire entries early on the others."""

from __future__ import annotations

from pathlib import Path

from swarmnode.config import Config
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.storage.ops import Put


def test_a_peer_three_seconds_fast_does_not_hide_a_value_before_its_expiry(tmp_path: Path):
    c = Cluster(ClusterConfig(seed=1, nodes=2), Config.for_profile("local"), tmp_path)
    try:
        c.start()
        c.run_for(2.0)
        writer, fast = c.nodes[0], c.nodes[1]
        c.set_skew(fast.index, 3.0)
        results = []
        c.submit(writer.index, Put("sim", "k", "v", ttl=5.0), results.append)
        c.run_for(0.001)
        expires_at = results[0].value["expires_at"]
        # Until half a second (the max offset) before its expiry by the writer's own
        # clock, the value stays visible on the writer, whatever the fast peer did.
        while c.wall_ms(writer) < expires_at - 600:
            c.run_for(0.1)
            assert writer.store.get("sim", "k").reg.visible(c.wall_ms(writer))
        assert writer.node.counters["merge_rejected_clock_skew"] >= 1
        c.run_for(8.0)
        assert not writer.store.get("sim", "k").reg.visible(c.wall_ms(writer))
    finally:
        c.close()
