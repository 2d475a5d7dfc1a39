"""Sharded namespaces in the simulator: owners hold their partitions, and only they.

Production nodes on real LMDB in virtual time. Writes are proposed on the
partition's first owner (the request path that forwards them is tested on
its own); what is judged is placement: per-partition dissemination and
anti-entropy among owners, handoff after a death, a restart and a join, and
no acknowledged write lost through any of it.
"""

from __future__ import annotations

from pathlib import Path

from swarmnode.config import Config
from swarmnode.placement.hashing import partition_of
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.partition_oracles import check_partitions, owners_of
from swarmnode.storage.ops import DefineNs, OpResult, Put

NS = "mem"


def make(tmp_path: Path, nodes: int = 5, seed: int = 3) -> Cluster:
    cluster = Cluster(
        ClusterConfig(seed=seed, nodes=nodes, vectors=False, tick_mode="deadline"),
        Config.for_profile("local"),
        tmp_path,
    )
    cluster.start()
    cluster.run_for(3.0)
    results: list[OpResult] = []
    cluster.submit(0, DefineNs(NS, {"replicas": 2, "partitions": 16}), results.append)
    cluster.run_for(2.0)
    assert results and results[0].error is None
    return cluster


def wait(cluster: Cluster, check, limit: float = 60.0) -> list[str]:
    end = cluster.now + limit
    while True:
        problems = check()
        if not problems or cluster.now >= end:
            return problems
        cluster.run_for(0.25)


def write(cluster: Cluster, keys: list[str], value: str) -> list[OpResult]:
    """Each key proposed on one of its owners (as the cluster sees them now)."""
    acked: list[OpResult] = []
    by_id = {sn.node_id: sn for sn in cluster.live()}
    for key in keys:
        owners = sorted(owners_of(cluster, NS, key))
        cluster.submit(by_id[owners[0]].index, Put(NS, key, f"{value}:{key}"), acked.append)
    cluster.run_for(1.0)
    return acked


def holders(cluster: Cluster, key: str) -> set[str]:
    return {sn.node_id for sn in cluster.live() if sn.store.get(NS, key) is not None}


def test_owners_hold_their_partitions_and_only_they(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    try:
        keys = [f"k{i}" for i in range(200)]
        acked = write(cluster, keys, "v1")
        assert len(acked) == 200 and all(r.error is None for r in acked)
        assert wait(cluster, lambda: check_partitions(cluster)) == []
        for key in keys:
            assert holders(cluster, key) == owners_of(cluster, NS, key)
        stored = [sn.store.ns_stats(NS)["entries"] for sn in cluster.live()]
        # Each node holds about R/N = 2/5 of the 200 keys (16 partitions: coarse).
        assert sum(stored) == 400
        assert all(40 <= s <= 130 for s in stored), stored
    finally:
        cluster.close()


def test_a_dead_owners_partitions_move_and_come_back(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    try:
        keys = [f"k{i}" for i in range(150)]
        write(cluster, keys, "v1")
        assert wait(cluster, lambda: check_partitions(cluster)) == []
        cluster.crash(4)
        # After the dead grace (3 s) and a settle, the survivors take its partitions over.
        assert wait(cluster, lambda: check_partitions(cluster)) == []
        for key in keys:
            assert len(holders(cluster, key)) == 2
        more = [f"m{i}" for i in range(50)]
        write(cluster, more, "v2")
        cluster.restart(4)
        assert wait(cluster, lambda: check_partitions(cluster)) == []
        for key in keys + more:
            assert holders(cluster, key) == owners_of(cluster, NS, key)
            for sn in cluster.live():
                if sn.node_id in owners_of(cluster, NS, key):
                    assert sn.store.get(NS, key).reg.value.endswith(key)
    finally:
        cluster.close()


def test_a_joining_node_takes_its_share_while_writes_continue(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    try:
        keys = [f"k{i}" for i in range(300)]
        write(cluster, keys[:200], "v1")
        assert wait(cluster, lambda: check_partitions(cluster)) == []
        newcomer = cluster.add_node()
        acked = write(cluster, keys[200:], "v1")
        assert all(r.error is None for r in acked)
        assert wait(cluster, lambda: check_partitions(cluster)) == []
        owned = newcomer.node.placement.map.owned(NS)
        # 16 partitions x R = 2 over 6 nodes: about 5 each.
        assert 2 <= len(owned) <= 9
        for key in keys:
            assert holders(cluster, key) == owners_of(cluster, NS, key)
        held = {partition_of(k, 16) for k in keys if newcomer.store.get(NS, k) is not None}
        assert held == {partition_of(k, 16) for k in keys} & set(owned)
    finally:
        cluster.close()


def test_anti_entropy_repairs_a_partition_among_its_owners_only(tmp_path: Path) -> None:
    config = Config.for_profile("local")
    config.dissemination = type(config.dissemination)(enabled=False)
    cluster = Cluster(ClusterConfig(seed=5, nodes=4, vectors=False), config, tmp_path)
    try:
        cluster.start()
        cluster.run_for(3.0)
        cluster.submit(0, DefineNs(NS, {"replicas": 2, "partitions": 8}))
        cluster.run_for(3.0)
        keys = [f"k{i}" for i in range(60)]
        write(cluster, keys, "v1")
        # Gossip is off: only periodic anti-entropy rounds copy a write to its second owner.
        assert wait(cluster, lambda: check_partitions(cluster)) == []
        repaired = sum(sn.node.counters["ae_keys_applied"] for sn in cluster.live())
        assert repaired == 60 + 3  # each key to its second owner, the definition to 3 nodes
        for key in keys:
            assert holders(cluster, key) == owners_of(cluster, NS, key)
    finally:
        cluster.close()


def test_a_newcomer_is_ready_at_once_for_partitions_nobody_holds_data_of(tmp_path: Path) -> None:
    """A newcomer asks for every partition it gains; owners that hold nothing of one say so
    at once instead of copying it empty, `handoff_concurrency` partitions at a time (which
    kept a new node filling for minutes with the default 256 partitions)."""
    cluster = Cluster(
        ClusterConfig(seed=5, nodes=4, vectors=False, tick_mode="deadline"),
        Config.for_profile("local"),
        tmp_path,
    )
    try:
        cluster.start()
        cluster.run_for(3.0)
        cluster.submit(0, DefineNs(NS, {"replicas": 3, "partitions": 256}))

        def filling() -> list[str]:
            return [
                f"{sn.node_id} {len(sn.node.placement.map.filling)}"
                for sn in cluster.live()
                if sn.node.placement.map.filling
            ]

        assert wait(cluster, filling, limit=600.0) == []
        newcomer = cluster.add_node()
        joined = cluster.now
        pmap = newcomer.node.placement.map
        while pmap.view is None or newcomer.node_id not in pmap.view or len(pmap.view) < 5:
            assert cluster.now < joined + 60.0, "the newcomer never settled a view with it"
            cluster.run_for(0.05)
        settled = cluster.now
        assert len(pmap.owned(NS)) > 100
        assert wait(cluster, filling, limit=600.0) == []
        # Before: 8 partitions every fill_wait (2 s), over 30 s for these.
        assert cluster.now - settled < 3.0, f"ready {cluster.now - settled:.1f}s after settling"
    finally:
        cluster.close()
