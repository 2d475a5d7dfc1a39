"""A sharded namespace on real node processes: 5 nodes, R = 2.

Every key is readable from every node; each node holds about 2/5 of the
entries; a killed node's keys stay readable; it comes back and the cluster
converges; a sixth node joins while writes go on, takes about 1/6 of the
partitions, and no acknowledged write is lost.
"""

from __future__ import annotations

import threading
from typing import Any

from swarmnode.client import Client
from swarmnode.errors import SwarmError

from .procs import Cluster, wait_for

NS = "mem"
R = 2


def settled(cluster: Cluster, nodes: list[int]) -> bool:
    """Every chosen node sees the same view, holds nothing it does not own, waits for nothing,
    and hands nothing over."""
    seen = []
    for i in nodes:
        placement = cluster.stats(i)["placement"]
        spec = placement["namespaces"].get(NS)
        if spec is None or not placement["settled"] or placement["moves"]:
            return False
        if spec["filling"] or spec["held_not_owned"]:
            return False
        seen.append(tuple(placement["view"]))
    return len(set(seen)) == 1 and len(seen[0]) == len(nodes)


def write_all(client: Client, keys: list[str], tag: str) -> None:
    for key in keys:
        client.put(NS, key, f"{tag}:{key}")


def readable_everywhere(cluster: Cluster, keys: dict[str, str], nodes: list[int]) -> None:
    for i in nodes:
        client = cluster.client(i)
        for key, value in keys.items():
            assert client.get(NS, key)["value"] == value, (i, key)


def test_five_nodes_r2_survive_a_kill_a_restart_and_a_join(make_cluster: Any) -> None:
    cluster = make_cluster(5)
    cluster.client(0).ns_init(NS, replicas=R, partitions=64)
    wait_for(lambda: settled(cluster, cluster.indexes()), "placement to settle")
    keys = [f"k{i:04d}" for i in range(400)]
    for n in range(5):
        write_all(cluster.client(n), keys[n::5], "v1")
    expected = {k: f"v1:{k}" for k in keys}

    # Every key readable from every node; each node holds about R/N of the entries.
    readable_everywhere(cluster, expected, cluster.indexes())
    stats = [cluster.client(i).ns_stats(NS) for i in cluster.indexes()]
    assert all(s["entries"] == 400 for s in stats)
    local = [s["local_entries"] for s in stats]
    assert sum(local) == R * 400
    assert all(0.2 * 400 <= n <= 0.6 * 400 for n in local), local

    # One node killed: every key still readable from the others, at once and after its
    # partitions have moved to the survivors.
    cluster.kill(4)
    alive = cluster.indexes(exclude=[4])
    readable_everywhere(cluster, expected, alive)
    wait_for(lambda: settled(cluster, alive), "the survivors to take the dead node's partitions")
    readable_everywhere(cluster, expected, alive)
    assert sum(cluster.client(i).ns_stats(NS)["local_entries"] for i in alive) == R * 400

    # It comes back: the cluster converges on five nodes again.
    cluster.restart(4)
    cluster.wait_all_alive()
    wait_for(lambda: settled(cluster, cluster.indexes()), "the cluster to converge again")
    readable_everywhere(cluster, expected, cluster.indexes())

    # A sixth node joins while writes go on.
    acked: dict[str, str] = {}
    failures: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        client = cluster.nodes[1].client(timeout=60.0)
        try:
            i = 0
            while not stop.is_set():
                key = f"j{i:05d}"
                try:
                    client.put(NS, key, f"v2:{key}")
                except SwarmError as exc:
                    failures.append(exc)
                else:
                    acked[key] = f"v2:{key}"
                i += 1
        finally:
            client.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        newcomer = cluster.add_node()
        cluster.wait_all_alive()
        wait_for(lambda: settled(cluster, cluster.indexes()), "the newcomer to take its share")
    finally:
        stop.set()
        thread.join()
    assert len(acked) > 50 and not failures, failures[:3]
    wait_for(lambda: settled(cluster, cluster.indexes()), "the last writes to settle")
    members = {m["node_id"]: m for m in cluster.client(5).members()["members"]}
    share = members[newcomer.node_id]["partitions"] / (64 * R)
    assert 1 / 6 * 0.5 <= share <= 1 / 6 * 1.6, share
    everything = {**expected, **acked}
    readable_everywhere(cluster, everything, [0, 5])
    total = cluster.client(2).ns_stats(NS)["entries"]
    assert total == len(everything)
