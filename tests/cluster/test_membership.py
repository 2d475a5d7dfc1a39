"""Joining a cluster with real processes: unreachable seeds, graceful leave, unsafe binds."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from nodeproc import NodeProcess, spawn_node

from .procs import Cluster, loopback_hosts, read_value, wait_for

NS = "default"


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on `host` (a node binds both)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((host, 0))
        port = tcp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, port))
    return port


def test_a_node_whose_seed_is_down_serves_alone_and_joins_when_it_comes_up(
    launch_node: Callable[..., NodeProcess],
) -> None:
    early_host, seed_host = loopback_hosts(2)
    seed_addr = f"{seed_host}:{free_port(seed_host)}"
    early = launch_node(None, "--join", seed_addr, bind=f"{early_host}:0")
    with early.client() as c:
        c.put(NS, "written-alone", "before any peer")
        assert c.get(NS, "written-alone")["value"] == "before any peer"
        assert [m["node_id"] for m in c.members()["members"]] == [early.node_id]

    seed = launch_node(None, bind=seed_addr)
    for node, other in ((early, seed), (seed, early)):
        with node.client() as c:
            wait_for(
                lambda c=c, other=other: any(
                    m["node_id"] == other.node_id and m["state"] == "alive"
                    for m in c.members()["members"]
                ),
                "the early node and its late seed to see each other alive",
            )
    with seed.client() as c:
        wait_for(
            lambda: read_value(NS, "written-alone")(c) == "before any peer",
            "the early node's write to reach the seed",
        )


def test_a_gracefully_stopped_node_is_seen_as_left_not_dead(make_cluster: Any) -> None:
    cluster: Cluster = make_cluster(3)
    cluster.stop(2)
    cluster.wait_state(2, "left", [0, 1])
    cluster.restart(2)
    cluster.wait_all_alive()


def test_a_keyless_node_refuses_to_gossip_beyond_loopback_unless_insecure(
    launch_node: Callable[..., NodeProcess], scratch: Any
) -> None:
    refused = spawn_node(scratch / "refused", bind="0.0.0.0:0")
    assert refused.wait_exit() == 2  # a configuration that cannot work
    assert "cluster key" in refused.log()
    refused.close()
    insecure = launch_node(None, "--insecure", bind="0.0.0.0:0")
    with insecure.client() as c:
        assert c.ping()["pong"] is True
