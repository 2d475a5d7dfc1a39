"""`watch` on a sharded namespace, through the real service layer on simulated nodes.

A watcher on one node gets every change written through any node, including
changes to partitions it does not hold; an owner that crashes is replaced and
the watcher is told which partitions may have missed changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swarmnode.config import Config
from swarmnode.sim.cluster import Cluster, ClusterConfig

NS = "mem"


class Ctx:
    observe = None


def call(cluster: Cluster, index: int, op: str, args: dict[str, Any], limit: float = 10.0) -> Any:
    sn = cluster.nodes[index]
    task = cluster.loop.create_task(sn.service.call(op, args, Ctx()))
    end = cluster.now + limit
    while not task.done() and cluster.now < end:
        cluster.run_for(0.01)
    assert task.done(), f"{op} {args} on n{index} not answered within {limit}s"
    return task.result()


class Watcher:
    """A client's watch stream on one node, read into a list as the simulation runs."""

    def __init__(self, cluster: Cluster, index: int, args: dict[str, Any]) -> None:
        self.cluster = cluster
        self.stream = call(cluster, index, "watch", {"values": True, "prefix": "", **args})
        self.events: list[dict[str, Any]] = []
        self.task = cluster.loop.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.stream:
            self.events.append(event)

    def puts(self) -> dict[str, Any]:
        return {e["key"]: e["value"] for e in self.events if e["event"] == "put"}

    def gaps(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "gap"]

    def wait(self, check: Any, limit: float = 30.0) -> None:
        end = self.cluster.now + limit
        while not check() and self.cluster.now < end:
            self.cluster.run_for(0.05)
        assert check(), f"not within {limit}s of simulated time; events: {self.events[-5:]}"

    def close(self) -> None:
        """The client goes: its stream ends, and the owners close its feeds."""
        self.task.cancel()
        closing = self.cluster.loop.create_task(self.stream.aclose())
        self.wait(lambda: closing.done() and feeds_open(self.cluster) == 0, limit=10.0)
        self.cluster.run_for(0.1)  # the owners' last answers arrive


@pytest.fixture
def cluster(tmp_path: Path):
    c = Cluster(
        ClusterConfig(seed=17, nodes=5, tick_mode="deadline"),
        Config.for_profile("local"),
        tmp_path,
    )
    c.start()
    c.run_for(3.0)
    call(c, 0, "ns_init", {"ns": NS, "replicas": 2, "partitions": 16})
    c.run_for(3.0)
    yield c
    c.close()


def feeds_open(cluster: Cluster) -> int:
    return sum(sn.served.services.stats()["watch"]["watch_feeds"] for sn in cluster.live())


def test_a_watcher_sees_every_write_made_anywhere_and_is_told_of_a_lost_owner(
    cluster: Cluster,
) -> None:
    watcher = Watcher(cluster, 0, {"ns": NS})
    me = cluster.nodes[0].node_id
    pmap = cluster.nodes[0].node.placement.map
    foreign = [p for p in range(16) if not pmap.ready(NS, p)]
    assert foreign  # node 0 holds only some partitions: the rest must come from owners
    written = {}
    for i in range(60):
        key = f"k{i:03d}"
        call(cluster, 1 + i % 4, "put", {"ns": NS, "key": key, "value": i})
        written[key] = i
    watcher.wait(lambda: watcher.puts() == written)
    assert any(pmap.partition_of(NS, k) in foreign for k in written)
    assert watcher.gaps() == []
    assert feeds_open(cluster) >= 1

    # Crash an owner that feeds node 0: the watcher is told which partitions resumed
    # elsewhere, and then sees every later write again.
    relay = watcher.stream._relay
    victim_id = next(f.node for f in relay.feeds if f.node != me)
    victim = next(sn.index for sn in cluster.nodes if sn.node_id == victim_id)
    fed = set().union(*(f.parts for f in relay.feeds if f.node == victim_id))
    cluster.crash(victim)
    watcher.wait(lambda: any(g["partitions"] for g in watcher.gaps()))
    resumed = {p for g in watcher.gaps() for p in g["partitions"]}
    assert fed <= resumed | {p for g in watcher.gaps() for p in g["uncovered"]}
    assert {g["reason"] for g in watcher.gaps()} <= {"owner_lost", "moved", "no_owner"}
    later = {}
    writers = [i for i in range(1, 5) if i != victim]
    for i in range(40):
        key = f"after{i:03d}"
        call(cluster, writers[i % len(writers)], "put", {"ns": NS, "key": key, "value": i})
        later[key] = i
    watcher.wait(lambda: later.items() <= watcher.puts().items())

    watcher.close()


def test_a_watch_of_every_namespace_relays_sharded_ones_too(cluster: Cluster) -> None:
    call(cluster, 0, "ns_init", {"ns": "whole"})
    cluster.run_for(1.0)
    watcher = Watcher(cluster, 2, {})
    written = {}
    for i in range(30):
        call(cluster, i % 5, "put", {"ns": NS, "key": f"s{i}", "value": i})
        call(cluster, i % 5, "put", {"ns": "whole", "key": f"w{i}", "value": i})
        written[f"s{i}"] = written[f"w{i}"] = i
    watcher.wait(lambda: written.items() <= watcher.puts().items())
    sharded = [e for e in watcher.events if e["ns"] == NS and e["event"] == "put"]
    assert len(sharded) == 30  # each sharded write once: one source per partition
    watcher.close()
