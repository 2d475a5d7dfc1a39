"""`watch` on a sharded namespace, on real node processes: 5 nodes, R = 2.

A watcher on one node receives every write made through the other nodes,
including writes to partitions its node does not hold; an owner that feeds
it is killed, the watcher is told which partitions may have missed changes,
and it goes on receiving every write. One cluster for the module.
"""

from __future__ import annotations

import threading
from typing import Any

from swarmnode.client import Client

from .procs import wait_for
from .test_sharding import settled

NS = "mem"
END = "zz-end"


class Reader:
    """A watch stream read on a thread until the END key arrives (or the node goes)."""

    def __init__(self, client: Client) -> None:
        self.watch = client.watch(NS)
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for event in self.watch:
            with self.lock:
                self.events.append(event)
            if event["key"] == END:
                return

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def puts(self) -> dict[str, Any]:
        return {e["key"]: e["value"] for e in self.snapshot() if e["event"] == "put"}

    def gaps(self) -> list[dict[str, Any]]:
        return [e for e in self.snapshot() if e["event"] == "gap"]


def test_a_watcher_gets_every_write_and_is_told_of_a_killed_owner(make_cluster: Any) -> None:
    cluster = make_cluster(5)
    cluster.client(0).ns_init(NS, replicas=2, partitions=16)
    wait_for(lambda: settled(cluster, cluster.indexes()), "placement to settle")
    reader = Reader(cluster.nodes[0].client(timeout=30.0))
    relay = cluster.stats(0)["watch"]
    sources = relay["watch_relay_sources"]
    assert relay["watch_relays"] == 1 and sources  # node 0 takes some partitions from owners
    assert sum(sources.values()) < 16

    written = {}
    for i in range(80):
        key = f"k{i:03d}"
        cluster.client(1 + i % 4).put(NS, key, i)
        written[key] = i
    wait_for(lambda: reader.puts() == written, "the watcher to see every write")
    assert reader.gaps() == []

    # Kill the owner feeding node 0 the most partitions.
    ids = {cluster.nodes[i].node_id: i for i in cluster.indexes()}
    victim_id = max(sources, key=lambda n: (sources[n], n))
    victim = ids[victim_id]
    cluster.kill(victim)
    wait_for(lambda: any(g["partitions"] for g in reader.gaps()), "a gap notice")
    gaps = reader.gaps()
    resumed = {p for g in gaps for p in g["partitions"]}
    assert len(resumed) >= sources[victim_id]
    assert {g["reason"] for g in gaps} <= {"owner_lost", "moved"}
    assert cluster.stats(0)["watch"]["watch_relay_sources"].get(victim_id) is None

    later = {}
    writers = [i for i in cluster.indexes(exclude=[0, victim])]
    for i in range(60):
        key = f"after{i:03d}"
        cluster.client(writers[i % len(writers)]).put(NS, key, i)
        later[key] = i
    wait_for(lambda: later.items() <= reader.puts().items(), "every later write")
    cluster.client(writers[0]).put(NS, END, "end")  # the reader stops when it sees this
    reader.thread.join(timeout=60)
    assert not reader.thread.is_alive()
    reader.watch.close()

    # The client went: the owners close its feeds.
    wait_for(
        lambda: all(cluster.stats(i)["watch"]["watch_feeds"] == 0 for i in writers),
        "the feeds to close",
    )
