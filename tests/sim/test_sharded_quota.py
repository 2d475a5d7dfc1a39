"""An agent's quota on a sharded namespace, through the real service layer on simulated nodes.

A write is checked where it arrives and again on the owner that runs it, each
against what it holds of the agent's data: an agent that writes only through a
node owning none of its keys' partitions still reaches its quota.
"""

from __future__ import annotations

from pathlib import Path

from swarmnode.config import Config
from swarmnode.errors import QuotaExceeded
from swarmnode.sim.cluster import Cluster, ClusterConfig

from .service_calls import call

AGENT = "q"
NS = f"agent:{AGENT}"
LIMIT = 20_000
NODES, R = 5, 2


def test_writes_through_a_node_holding_none_of_them_reach_the_quota(tmp_path: Path) -> None:
    cluster = Cluster(
        ClusterConfig(seed=5, nodes=NODES, tick_mode="deadline", vectors=False),
        Config.for_profile("local"),
        tmp_path,
    )
    try:
        cluster.start()
        cluster.run_for(3.0)
        call(cluster, 0, "ns_init", {"ns": NS, "replicas": R, "partitions": 16})
        call(cluster, 0, "agent_register", {"agent": AGENT, "quota": {"bytes": LIMIT}})
        cluster.run_for(3.0)
        pmap = cluster.nodes[0].node.placement.map
        foreign = (f"k{i:05d}" for i in range(100_000))
        keys = [k for k in foreign if not pmap.owns(NS, pmap.partition_of(NS, k))]
        admitted = 0
        refused = None
        for key in keys[:200]:
            try:
                call(cluster, 0, "put", {"ns": NS, "key": key, "value": "x" * 1000}, agent=AGENT)
            except QuotaExceeded as exc:
                refused = exc
                break
            admitted += 1
        assert refused is not None, f"{admitted} writes of 1 kB admitted under a {LIMIT} B quota"
        assert cluster.nodes[0].store.catalog.usage_of(AGENT)[0] == 0  # node 0 holds none
        # Each owner stops at its own share: N/R times the quota, at most, cluster-wide.
        assert admitted * 1000 <= NODES * LIMIT / R
    finally:
        cluster.close()
