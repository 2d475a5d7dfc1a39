"""A delta the network delivers again after the tombstone grace cannot bring deleted data back.

The causal horizon (replication/merge.py): a gossip delta with live data older
than the grace is refused. Here every datagram of a put is duplicated and held
back past the grace; the key is deleted, its tombstone collected everywhere,
and then the old deltas arrive.
"""

from __future__ import annotations

from dataclasses import replace

from swarmnode.config import Config
from swarmnode.sim import oracles
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.storage.ops import Delete, Put

GRACE = 3.0


def test_old_deltas_arriving_after_the_grace_leave_a_collected_delete_deleted(tmp_path):
    config = Config.for_profile("local")
    config.store = replace(config.store, tombstone_grace=GRACE)
    cluster = Cluster(ClusterConfig(seed=5, nodes=3), config, tmp_path)
    try:
        cluster.start()
        cluster.run_for(3.0)
        base = cluster.network.default
        cluster.network.default = replace(base, late_duplicate=1.0, late_delay=GRACE + 4.0)
        cluster.submit(0, Put("sim", "doomed", "secret"))
        cluster.run_for(0.5)
        cluster.network.default = base
        assert cluster.network.stats.late_duplicates > 0
        assert all(sn.store.get("sim", "doomed") is not None for sn in cluster.live())
        cluster.submit(1, Delete("sim", "doomed"))
        # Until the tombstone is collected everywhere, then until the old deltas arrived.
        for _ in range(200):
            cluster.run_for(0.1)
            if all(sn.store.get("sim", "doomed") is None for sn in cluster.live()):
                break
        assert all(sn.store.get("sim", "doomed") is None for sn in cluster.live())
        cluster.run_for(GRACE + 6.0)
        assert all(sn.store.get("sim", "doomed") is None for sn in cluster.live())
        # The writer gets none: peers never send a delta back to where it came from.
        refused = sum(sn.node.counters.get("deltas_stale_delta", 0) for sn in cluster.live())
        assert refused > 0, "the late deltas reached the stores and were refused"
        assert oracles.check_replicas(cluster) == []
    finally:
        cluster.close()
