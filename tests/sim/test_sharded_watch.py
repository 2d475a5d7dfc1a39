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
from swarmnode.sim.network import LinkProfile
from swarmnode.sim.partition_oracles import check_partitions

from .service_calls import call

NS = "mem"


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


def test_a_node_joining_moves_partitions_and_the_watch_follows(cluster: Cluster) -> None:
    watcher = Watcher(cluster, 0, {"ns": NS})
    cluster.add_node()
    written: dict[str, int] = {}
    end = cluster.now + 60
    i = 0
    # Writes go on while the newcomer takes its share (partitions move between owners).
    while (i < 40 or check_partitions(cluster)) and cluster.now < end:
        call(cluster, 1 + i % 4, "put", {"ns": NS, "key": f"j{i:03d}", "value": i})
        written[f"j{i:03d}"] = i
        i += 1
        cluster.run_for(0.1)
    assert check_partitions(cluster) == []
    gapped = {p for g in watcher.gaps() for p in g["partitions"] + g["uncovered"]}
    assert {g["reason"] for g in watcher.gaps()} <= {"moved"}
    pmap = cluster.nodes[0].node.placement.map
    # Every write arrives but for partitions the watch was told to re-read.
    wanted = {k: v for k, v in written.items() if pmap.partition_of(NS, k) not in gapped}
    watcher.wait(lambda: wanted.items() <= watcher.puts().items())
    # And after the move, every write arrives.
    later = {}
    for i in range(30):
        call(cluster, i % 6, "put", {"ns": NS, "key": f"z{i:03d}", "value": i})
        later[f"z{i:03d}"] = i
    watcher.wait(lambda: later.items() <= watcher.puts().items())
    watcher.close()


def test_on_a_lossy_network_every_commit_arrives_once_without_a_gap(tmp_path: Path) -> None:
    """Lost, duplicated and reordered datagrams: a lost poll answer is sent again by the
    next poll, and a duplicate is not delivered twice."""
    link = LinkProfile(loss=0.05, duplicate=0.05, reorder=0.1)
    cluster = Cluster(
        ClusterConfig(seed=3, nodes=5, tick_mode="deadline", link=link),
        Config.for_profile("local"),
        tmp_path,
    )
    try:
        cluster.start()
        cluster.run_for(3.0)
        call(cluster, 0, "ns_init", {"ns": NS, "replicas": 2, "partitions": 16})
        cluster.run_for(3.0)
        watcher = Watcher(cluster, 0, {"ns": NS})
        written = {}
        for i in range(100):
            call(cluster, 1 + i % 4, "put", {"ns": NS, "key": f"k{i}", "value": i})
            written[f"k{i}"] = i
        watcher.wait(lambda: written.items() <= watcher.puts().items(), limit=60.0)
        assert watcher.gaps() == []
        # A write retried on the next owner after a lost answer is two commits, so the
        # same key may come twice; the same commit (one node's seq) never does.
        commits = [(e["key"], e["seq"]) for e in watcher.events if e["event"] == "put"]
        assert len(commits) == len(set(commits))
        watcher.close()
    finally:
        cluster.close()


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

    # A sharded namespace created later joins the watch, announced as a gap.
    call(cluster, 4, "ns_init", {"ns": "late", "replicas": 2, "partitions": 8})
    watcher.wait(lambda: any(g["ns"] == "late" for g in watcher.gaps()))
    [notice] = [g for g in watcher.gaps() if g["ns"] == "late"]
    assert notice["reason"] == "new_namespace"
    assert sorted(notice["partitions"]) == list(range(8))  # local ones too: all are new
    late = {}
    for i in range(20):
        call(cluster, i % 5, "put", {"ns": "late", "key": f"l{i}", "value": i})
        late[f"l{i}"] = i
    watcher.wait(lambda: late.items() <= watcher.puts().items())
    watcher.close()


def ask(cluster: Cluster, index: int, owner: int, body: dict[str, Any]) -> Any:
    """One feed call from node `index` to node `owner`, as a relay makes it."""
    host = cluster.nodes[index].host
    task = cluster.loop.create_task(host.call(cluster.nodes[owner].addr, body, 5.0))
    while not task.done():
        cluster.run_for(0.01)
    return task.result()


def held_by(cluster: Cluster, index: int) -> list[int]:
    pmap = cluster.nodes[index].node.placement.map
    return [p for p in range(16) if pmap.ready(NS, p)]


def keys_in(cluster: Cluster, parts: list[int], count: int) -> list[str]:
    pmap = cluster.nodes[0].node.placement.map
    found = (f"f{i:05d}" for i in range(100_000))
    return [k for k in found if pmap.partition_of(NS, k) in parts][:count]


def test_a_feed_sends_again_what_a_lost_answer_carried_and_nothing_twice_after(
    cluster: Cluster,
) -> None:
    parts = held_by(cluster, 3)
    opened = ask(cluster, 0, 3, {"k": "wsub", "ns": NS, "x": "", "v": True, "p": list(range(16))})
    feed = opened["r"]["s"]
    assert sorted(opened["n"]) == [p for p in range(16) if p not in parts]
    keys = keys_in(cluster, parts, 5)
    for i, key in enumerate(keys):
        call(cluster, 1, "put", {"ns": NS, "key": key, "value": i})
    first = ask(cluster, 0, 3, {"k": "wpoll", "s": feed, "a": 0})["r"]
    assert [s for s, _ in first["ev"]] == [1, 2, 3, 4, 5]
    # The answer was lost: the same poll gets the same events again.
    again = ask(cluster, 0, 3, {"k": "wpoll", "s": feed, "a": 0})["r"]
    assert again["ev"] == first["ev"]
    call(cluster, 2, "put", {"ns": NS, "key": keys[0], "value": "later"})
    after = ask(cluster, 0, 3, {"k": "wpoll", "s": feed, "a": 5})["r"]
    assert [s for s, _ in after["ev"]] == [6]
    assert ask(cluster, 0, 3, {"k": "wstop", "s": feed}) == {"r": True}
    assert ask(cluster, 0, 3, {"k": "wpoll", "s": feed, "a": 6})["r"] == {"gone": "unknown"}


def test_a_feed_nobody_polls_is_closed_and_one_that_overflows_says_so(cluster: Cluster) -> None:
    parts = held_by(cluster, 3)
    body = {"k": "wsub", "ns": NS, "x": "", "v": True, "p": parts}
    idle = ask(cluster, 0, 3, body)["r"]["s"]
    busy = ask(cluster, 0, 3, body)["r"]["s"]
    feeds = cluster.nodes[3].served.services.stats
    assert feeds()["watch"]["watch_feeds"] == 2
    # More than a feed's buffer (api.watch_buffer_bytes, 4 MiB) is written before `busy`
    # is polled: its subscriber fell too far behind.
    big = "x" * 900_000
    for i, key in enumerate(keys_in(cluster, parts, 6)):
        call(cluster, 1, "put", {"ns": NS, "key": key, "value": f"{i}{big}"})
    assert ask(cluster, 0, 3, {"k": "wpoll", "s": busy, "a": 0})["r"] == {"gone": "overflow"}
    # `idle` is never polled: its lease lapses.
    end = cluster.now + 30
    while feeds()["watch"]["watch_feeds"] and cluster.now < end:
        cluster.run_for(0.2)
    stats = feeds()["watch"]
    assert stats["watch_feeds"] == 0 and stats["watch_feeds_overflowed"] == 1
    assert stats["watch_feeds_expired"] == 1
    assert ask(cluster, 0, 3, {"k": "wpoll", "s": idle, "a": 0})["r"] == {"gone": "unknown"}
