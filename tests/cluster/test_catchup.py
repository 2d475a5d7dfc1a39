"""A node that was down while others took writes catches up through anti-entropy.

Gossip only reaches nodes that are up, and each delta is retransmitted a
bounded number of times, so a node that comes back after its peers' gossip
queues have drained can only learn what it missed from Merkle anti-entropy.
The tests wait for exactly that situation before restarting the node, then
check that it converges and that its anti-entropy counters account for the
repair. A second test turns gossip off by configuration, so that nothing but
an explicit `sync` can repair, and checks what `sync` reports.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from swarmnode.errors import NotFound

from .procs import Cluster, read_value, wait_for

NS = "default"
MISSED = 20
MAX_VALUE_BYTES = 1 << 20
"""The store's default `max_value_bytes`: the msgpack size of the largest value."""
BIN32_HEADER = 5
"""Keys written while the node is down."""

NO_GOSSIP = """
[dissemination]
enabled = false
[antientropy]
interval = 1.0e9
round_timeout = 30.0
[membership]
probe_interval = 1.0
probe_timeout = 0.5
"""
"""No delta is gossiped (`enabled = false`) and the first periodic round is due in
years (a node starts its first one at a random point of the interval): only `sync`, and
the round a node starts when a member joins, can move data. A member that refutes a
suspicion starts such a round too, so the probes get the LAN profile's patience: the
local profile's 50 ms probe timeout can suspect a node that a loaded machine stalled.
The tests count on every sync round succeeding, so a round fails only after 30 s of a
silent peer rather than the local profile's 1 s."""


def gossip_drained(cluster: Cluster, nodes: list[int]) -> bool:
    return all(cluster.stats(i)["dissemination"]["pending"] == 0 for i in nodes)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_a_node_down_during_writes_catches_up_after_restart(make_cluster: Any, how: str) -> None:
    cluster: Cluster = make_cluster(3)
    down, up = 2, [0, 1]
    cluster.client(0).put(NS, "before", "seen by all")
    cluster.client(0).put(NS, "to-delete", "doomed")
    cluster.client(1).put(NS, "short-lived", "expires while the node is down", ttl=1)
    cluster.wait_everywhere(read_value(NS, "to-delete"), lambda v: v == "doomed", "setup")
    # Stored, not visible: on a slow machine the 1 s TTL may run out before every node
    # has been polled, and an expired entry is still a record that reached the node.
    cluster.wait_everywhere(
        lambda c: c.ns_stats(NS)["stored"], lambda n: n == 3, "the three setup entries"
    )

    if how == "sigterm":
        cluster.stop(down)
        cluster.wait_state(down, "left", up)
    else:
        cluster.kill(down)
        cluster.wait_state(down, "dead", up)

    big = hashlib.sha256(b"seed").digest() * ((MAX_VALUE_BYTES - BIN32_HEADER) // 32)
    big += b"!" * (MAX_VALUE_BYTES - BIN32_HEADER - len(big))
    for k in range(MISSED):
        cluster.client(k % 2).put(NS, f"missed-{k}", k)
    cluster.client(1).put(NS, "missed-big", big)
    cluster.client(0).delete(NS, "to-delete")
    cluster.client(1).incr(NS, "missed-count", 7)
    cluster.client(0).sadd(NS, "missed-set", ["a", "b"])
    changed = MISSED + 4
    wait_for(lambda: gossip_drained(cluster, up), "the live nodes' gossip queues to drain")

    cluster.restart(down)
    cluster.wait_all_alive()
    for k in range(MISSED):
        cluster.wait_everywhere(read_value(NS, f"missed-{k}"), lambda v, k=k: v == k, f"key {k}")
    cluster.wait_everywhere(read_value(NS, "missed-big"), lambda v: v == big, "the big value")
    cluster.wait_everywhere(read_value(NS, "to-delete"), lambda v: v is NotFound, "the delete")
    cluster.wait_everywhere(read_value(NS, "missed-count"), lambda v: v == 7, "the counter")
    cluster.wait_everywhere(
        lambda c: c.smembers(NS, "missed-set")["members"], lambda m: m == ["a", "b"], "the set"
    )
    assert cluster.client(down).get(NS, "before")["value"] == "seen by all"

    stats = cluster.stats(down)
    assert stats["counters"].get("ae_keys_applied", 0) >= changed, stats["counters"]
    assert stats["counters"].get("deltas_applied", 0) == 0, "gossip, not anti-entropy, repaired"

    # Converged trees are equal once every node has swept the expired entry.
    cluster.wait_everywhere(read_value(NS, "short-lived"), lambda v: v is NotFound, "expiry")
    cluster.wait_everywhere(
        lambda c: c.ns_stats(NS)["tombstones"], lambda n: n == 2, "two tombstones on every node"
    )
    report = cluster.client(down).sync()
    assert (report["peers"], report["rounds_ok"], report["failures"]) == (2, 2, [])
    assert report["keys_repaired"] == 0, f"converged nodes still differ: {report}"


def test_sync_repairs_what_gossip_never_carried_and_reports_it(make_cluster: Any) -> None:
    cluster: Cluster = make_cluster(3, config=NO_GOSSIP)
    writer, reader, third = 0, 1, 2
    wait_for(
        lambda: not any(cluster.stats(i)["antientropy"]["active"] for i in cluster.indexes()),
        "the rounds started when members joined to finish",
    )
    for k in range(MISSED):
        cluster.client(writer).put(NS, f"k{k}", {"n": k})
    cluster.client(writer).incr(NS, "count", 3)
    cluster.client(writer).sadd(NS, "set", ["m"])
    written = MISSED + 2
    with pytest.raises(NotFound):
        cluster.client(reader).get(NS, "k0")

    first = cluster.client(reader).sync(peer=cluster.nodes[writer].gossip)
    assert (first["peers"], first["rounds_ok"], first["failures"]) == (1, 1, [])
    assert (first["keys_received"], first["keys_sent"]) == (written, 0), first
    assert first["keys_repaired"] == written
    assert first["bytes_exchanged"] == first["digest_bytes"] + first["state_bytes"] > 0
    for k in range(MISSED):
        cluster.wait_everywhere(read_value(NS, f"k{k}"), lambda v, k=k: v == {"n": k}, "", [reader])
    cluster.wait_everywhere(read_value(NS, "count"), lambda v: v == 3, "the counter", [reader])

    second = cluster.client(reader).sync(peer=cluster.nodes[third].node_id)
    assert (second["keys_sent"], second["keys_received"]) == (written, 0), second
    cluster.wait_everywhere(
        lambda c: c.smembers(NS, "set")["members"], lambda m: m == ["m"], "the set", [third]
    )

    settled = cluster.client(third).sync()
    assert (settled["rounds_ok"], settled["keys_repaired"]) == (2, 0), settled
    gossip = cluster.stats(writer)["dissemination"]
    assert (gossip["deltas_queued"], gossip["deltas_sent"]) == (0, 0), gossip


def test_keys_a_sync_received_are_readable_when_it_returns(make_cluster: Any) -> None:
    cluster: Cluster = make_cluster(2, config=NO_GOSSIP)
    for k in range(MISSED):
        cluster.client(0).put(NS, f"k{k}", k)
    report = cluster.client(1).sync(peer=cluster.nodes[0].gossip)
    assert report["keys_received"] == MISSED
    for k in range(MISSED):
        assert cluster.client(1).get(NS, f"k{k}")["value"] == k
