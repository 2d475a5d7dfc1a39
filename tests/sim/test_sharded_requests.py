"""Requests on a sharded namespace from any node, through the real service layer.

Simulated nodes (production code, virtual time); every call is what a client's
request runs: validate, embed, route, execute.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.config import Config
from swarmnode.errors import NotFound, SwarmError, Unavailable
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.partition_oracles import check_partitions, owners_of

from .service_calls import call

NS = "mem"


@pytest.fixture
def cluster(tmp_path: Path):
    c = Cluster(
        ClusterConfig(seed=11, nodes=5, tick_mode="deadline"),
        Config.for_profile("local"),
        tmp_path,
    )
    c.start()
    c.run_for(3.0)
    call(c, 0, "ns_init", {"ns": NS, "replicas": 2, "partitions": 16, "dim": 3})
    c.run_for(3.0)
    yield c
    c.close()


def test_every_key_written_anywhere_is_readable_from_every_node(cluster: Cluster) -> None:
    for i in range(60):
        reply = call(cluster, i % 5, "put", {"ns": NS, "key": f"k{i}", "value": i})
        assert "hinted" not in reply
    for i in range(60):
        holders = {sn.node_id for sn in cluster.live() if sn.store.get(NS, f"k{i}") is not None}
        assert holders <= owners_of(cluster, NS, f"k{i}")  # written on owners only
        for index in range(5):
            assert call(cluster, index, "get", {"ns": NS, "key": f"k{i}"})["value"] == i
    with pytest.raises(NotFound):
        call(cluster, 2, "get", {"ns": NS, "key": "never-written"})
    assert check_partitions(cluster) == []


def test_list_search_and_ns_stats_cover_every_partition_once(cluster: Cluster) -> None:
    for i in range(90):
        call(cluster, i % 5, "put", {"ns": NS, "key": f"k{i:03d}", "value": f"v{i}"})
    cluster.run_for(2.0)
    for index in range(5):
        keys, cursor = [], None
        while True:
            page = call(cluster, index, "list", {"ns": NS, "limit": 7, "cursor": cursor})
            keys += [item["key"] for item in page["items"]]
            cursor = page["cursor"]
            if cursor is None:
                break
        assert keys == [f"k{i:03d}" for i in range(90)]
        found = call(cluster, index, "search", {"pattern": "v1*", "ns": NS, "limit": 1000})
        assert sorted(i["key"] for i in found["items"]) == sorted(
            f"k{i:03d}" for i in range(90) if f"v{i}".startswith("v1")
        )
        stats = call(cluster, index, "ns_stats", {"ns": NS})
        assert stats["entries"] == 90 and "partial" not in stats
        local = cluster.nodes[index].store.ns_stats(NS)
        assert stats["local_entries"] == local["entries"] < 90
    everything = call(cluster, 1, "search", {"pattern": "k04*", "in": "keys"})
    assert {i["key"] for i in everything["items"]} == {f"k04{d}" for d in range(10)}


def test_vsearch_and_vsearch_many_merge_the_shards_into_the_whole_answer(cluster: Cluster) -> None:
    import random

    rng = random.Random(4)
    vectors = {f"v{i}": [rng.uniform(-1, 1) for _ in range(3)] for i in range(80)}
    for i, (key, vec) in enumerate(vectors.items()):
        call(cluster, i % 5, "put", {"ns": NS, "key": key, "value": key, "vector": vec})
    cluster.run_for(2.0)
    query = [0.3, -0.2, 0.9]

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    expected = sorted(vectors, key=lambda k: -cosine(query, vectors[k]))[:10]
    for index in range(5):
        reply = call(cluster, index, "vsearch", {"ns": NS, "vector": query, "k": 10})
        assert [item["key"] for item in reply["items"]] == expected
        assert "partial" not in reply
        near = call(cluster, index, "vsearch", {"ns": NS, "key": expected[0], "k": 3})
        assert near["items"][0]["key"] == expected[0]
    queries = [query, [-0.5, 0.1, 0.2], vectors["v7"]]
    alone = [call(cluster, 0, "vsearch", {"ns": NS, "vector": q, "k": 4}) for q in queries]
    for index in range(5):
        batch = call(cluster, index, "vsearch_many", {"ns": NS, "vectors": queries, "k": 4})
        assert "partial" not in batch
        assert [r["items"] for r in batch["results"]] == [a["items"] for a in alone]


def test_an_unreachable_partition_is_named_never_answered_empty(cluster: Cluster) -> None:
    for i in range(40):
        call(cluster, 0, "put", {"ns": NS, "key": f"k{i}", "value": i})
    cluster.run_for(1.0)
    me = cluster.nodes[0]
    # Cut node 0 off: what it does not own, it cannot read.
    cluster.network.partition([me.addr])
    foreign = next(f"k{i}" for i in range(40) if me.node_id not in owners_of(cluster, NS, f"k{i}"))
    with pytest.raises(Unavailable, match="partition"):
        call(cluster, 0, "get", {"ns": NS, "key": foreign})
    stats = call(cluster, 0, "ns_stats", {"ns": NS})
    assert stats["partial"] is True and 0 < stats["missing_share"] < 1
    # Writes stay available: kept as hints, handed over once the owners are back.
    reply = call(cluster, 0, "put", {"ns": NS, "key": foreign, "value": "during"})
    assert reply["hinted"] is True
    cluster.network.heal()
    end = cluster.now + 60
    while check_partitions(cluster) and cluster.now < end:
        cluster.run_for(0.5)
    assert check_partitions(cluster) == []
    for index in range(5):
        assert call(cluster, index, "get", {"ns": NS, "key": foreign})["value"] == "during"


def test_w_two_waits_for_a_second_owner(cluster: Cluster) -> None:
    call(cluster, 0, "ns_init", {"ns": "strong", "replicas": 2, "partitions": 8, "w": 2})
    cluster.run_for(3.0)
    for i in range(20):
        call(cluster, i % 5, "put", {"ns": "strong", "key": f"s{i}", "value": i})
        owners = owners_of(cluster, "strong", f"s{i}")
        held = {sn.node_id for sn in cluster.live() if sn.store.get("strong", f"s{i}")}
        assert held == owners  # both owners committed before the reply
    # With one owner of a partition cut off, w = 2 cannot be met: said, not hidden.
    victim = cluster.nodes[4]
    cluster.network.partition([victim.addr])
    key = next(
        f"x{i}" for i in range(100) if victim.node_id in owners_of(cluster, "strong", f"x{i}")
    )
    writer = next(
        sn.index
        for sn in cluster.live()
        if sn.node_id in owners_of(cluster, "strong", key) and sn is not victim
    )
    with pytest.raises(SwarmError, match="w=2"):
        call(cluster, writer, "put", {"ns": "strong", "key": key, "value": 1})
