"""The tools on a node with a peer: writes replicate, sync repairs, analytics sees the traffic."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mcp_harness import McpSession
from nodeproc import NodeProcess

from swarmnode.errors import NotFound

WAIT = 30.0
"""Seconds to wait for replication that must happen; only a broken cluster runs it out."""


def eventually_get(node: NodeProcess, ns: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    with node.client() as c:
        while True:
            try:
                return c.get(ns, key)
            except NotFound:
                assert time.monotonic() < deadline, f"{ns}/{key} never reached {node.node_id}"
                time.sleep(0.05)


def analytics_with_peers_alive(mcp: McpSession, alive: int) -> dict[str, Any]:
    """The analytics report, polled until it counts `alive` peers alive: on a loaded
    machine a probe may briefly hold a live peer as suspect."""
    deadline = time.monotonic() + WAIT
    while True:
        report = mcp.ok("memory_analytics", {"timeframe": "5m"})
        if report["replication"]["peers_alive"] == alive:
            return report
        assert time.monotonic() < deadline, report["replication"]
        time.sleep(0.05)


def test_sync_analytics_and_replication_with_a_peer(
    launch_node: Callable[..., NodeProcess],
) -> None:
    a = launch_node()
    b = launch_node(None, "--join", a.gossip)
    assert a.socket is not None
    with McpSession(a.socket) as mcp:
        mcp.ok("memory_store", {"namespace": "t-cluster", "key": "from-a", "value": "hello"})
        assert eventually_get(b, "t-cluster", "from-a")["value"] == "hello"

        with b.client() as c:
            c.put("t-cluster", "from-b", {"n": 1})
        got = eventually_get(a, "t-cluster", "from-b")
        assert mcp.ok("memory_retrieve", {"namespace": "t-cluster", "key": "from-b"}) == got

        everyone = mcp.ok("memory_sync", {"target": "all"})
        assert everyone["peers"] == 1 and everyone["rounds_ok"] == 1
        assert everyone["failures"] == []
        one = mcp.ok("memory_sync", {"target": b.node_id})
        assert (one["target"], one["peers"], one["rounds_ok"]) == (b.node_id, 1, 1)

        report = analytics_with_peers_alive(mcp, 1)
        replication = report["replication"]
        assert replication["lag_ms"]["count"] >= 1
        assert 0 <= replication["lag_ms"]["p50"] <= replication["lag_ms"]["max"] < WAIT * 1000
        assert replication["last_repair_age_s"] is not None
        traffic = report["traffic"]
        assert traffic["gossip"]["deltas_received"] >= 1
        assert traffic["gossip"]["deltas_sent"] >= 1
        assert traffic["repair"]["rounds_ok"] >= 2
        assert traffic["transport"]["datagrams_in"] > 0
