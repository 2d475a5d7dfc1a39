"""A node's metrics: one registry behind `stats`, `swarmnode status` and `GET /metrics`.

Real `swarmnode run` processes on loopback, scraped over HTTP and parsed with
prometheus_client's own parser; nothing waits a fixed time.
"""

from __future__ import annotations

import random
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nodeproc import NodeProcess
from prometheus_client.parser import text_string_to_metric_families

from swarmnode.cli import render_status
from swarmnode.config import Config
from swarmnode.errors import NotFound
from swarmnode.membership.compat import ClusterSettings
from swarmnode.membership.config import MembershipConfig
from swarmnode.membership.swim import Membership
from swarmnode.metrics import Registry
from swarmnode.metricsdoc import DOC, node_registry, render, splice
from swarmnode.node import Node
from swarmnode.replication.dissemination import Dissemination, DisseminationConfig
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store

METRICS_RE = re.compile(r"^swarmnode metrics: (http://\S+/metrics)$")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy (generous for 2 busy cores)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} within {timeout:g}s; last: {found!r}"
        time.sleep(0.05)


def metrics_url(node: NodeProcess) -> str:
    """The scrape address the node printed once it served (its port chosen by the kernel)."""
    found = wait_for(
        lambda: next((m for line in node._stdout if (m := METRICS_RE.match(line))), None),
        "the metrics line on stdout",
    )
    return found.group(1)


def scrape(url: str) -> tuple[Samples, dict[str, str]]:
    """Every sample of one scrape, by (name, sorted labels), and each family's type."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return samples, types


def arrived(client: Any, ns: str, key: str) -> bool:
    try:
        client.get(ns, key)
    except NotFound:
        return False
    return True


def nonzero(counters: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in counters.items() if v}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# stats path -> the sample /metrics shows for it, for counters that both must agree on.
AGREEING = {
    ("dissemination", "deltas_sent"): ("swarmnode_gossip_deltas_sent_total", {}),
    ("dissemination", "deltas_received"): ("swarmnode_gossip_deltas_received_total", {}),
    ("writer", "batches"): ("swarmnode_writer_commits_total", {}),
    ("writer", "ops"): ("swarmnode_writer_ops_total", {}),
    ("api", "requests"): ("swarmnode_api_requests_total", {}),
    ("transport", "datagrams_out"): ("swarmnode_transport_datagrams_total", {"direction": "out"}),
    ("transport", "datagrams_in"): ("swarmnode_transport_datagrams_total", {"direction": "in"}),
    ("transport", "bytes_out"): ("swarmnode_transport_udp_bytes_total", {"direction": "out"}),
    ("antientropy", "rounds_ok"): ("swarmnode_repair_rounds_total", {"result": "ok"}),
}


def test_a_running_node_serves_metrics_that_move_with_writes_and_gossip(
    launch_node: Callable[..., NodeProcess],
) -> None:
    a = launch_node(None, "--metrics-bind", "127.0.0.1:0")
    b = launch_node(None, "--join", a.gossip)
    url = metrics_url(a)
    with a.client() as ca, b.client() as cb:
        wait_for(lambda: ca.stats()["members"].get("alive") == 2, "the two nodes to meet")
        before, types = scrape(url)
        writes = 20
        for i in range(writes):
            ca.put("default", f"m{i}", i)
        wait_for(lambda: arrived(cb, "default", f"m{writes - 1}"), "the last write on the peer")
        wait_for(lambda: ca.stats()["dissemination"]["pending"] == 0, "the gossip queue to empty")
        after, _ = scrape(url)

        def grew(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert grew("swarmnode_requests_total", op="put", code="ok") == writes
        assert grew("swarmnode_request_duration_seconds_count", op="put") == writes
        assert grew("swarmnode_gossip_deltas_sent_total") >= writes
        assert grew("swarmnode_writer_commits_total") >= 1
        assert grew("swarmnode_writer_ops_total") >= writes
        assert grew("swarmnode_transport_datagrams_total", direction="out") > 0
        assert value(after, "swarmnode_members", state="alive") == 2
        assert types["swarmnode_request_duration_seconds"] == "histogram"
        assert types["swarmnode_writer_commit_duration_seconds"] == "histogram"
        assert types["swarmnode_gossip_deltas_sent"] == "counter"
        assert value(after, "swarmnode_writer_commit_duration_seconds_bucket", le="+Inf") == (
            value(after, "swarmnode_writer_commit_duration_seconds_count")
        )

        # One registry behind both: a stats call lies between two scrapes, counter by counter.
        first, _ = scrape(url)
        stats = ca.stats()
        last, _ = scrape(url)
        for path, (name, labels) in AGREEING.items():
            section, key = path
            low, high = value(first, name, **labels), value(last, name, **labels)
            assert low <= stats[section][key] <= high, (path, low, stats[section][key], high)
        assert stats["membership"] == {"peers_refused": 0, "messages_refused": 0, "refused": []}


def test_status_lists_a_peer_refused_for_its_cluster_settings(
    launch_node: Callable[..., NodeProcess], short_tmp: Path
) -> None:
    other_shape = short_tmp / "fanout4.toml"
    other_shape.write_text("[antientropy]\ntree_fanout = 4\ntree_depth = 8\n")
    first = launch_node(None)
    second = launch_node(None, "--config", str(other_shape), "--join", first.gossip)
    with first.client() as c:
        stats = wait_for(
            lambda: (s := c.stats())["membership"]["refused"] and s, "the refusal in stats"
        )
        [peer] = stats["membership"]["refused"]
        assert peer["node_id"] == second.node_id and peer["address"] == second.gossip
        assert {"setting": "antientropy.tree_fanout", "ours": 16, "theirs": 4} in (
            peer["mismatches"]
        )
        assert stats["membership"]["peers_refused"] == 1
        stats["analytics"] = c.call("analytics", timeframe="5m")
    text = render_status(stats)
    [line] = [line for line in text.splitlines() if line.startswith("refused ")]
    assert second.node_id in line and "antientropy.tree_fanout 4 (ours 16)" in line
    labels = [line.split()[0] for line in text.splitlines() if line and line[0] != " "]
    assert labels.count("transport") == 1, text


def test_replication_traffic_from_a_refused_peer_is_dropped_and_counted(tmp_path: Path) -> None:
    """A peer refused at the membership layer cannot slip its states in through gossip or
    anti-entropy: its d.deltas and ae.* messages are dropped before they reach the store."""
    rng = random.Random(3)
    config = Config.for_profile("local", data_dir=tmp_path)
    store = Store(tmp_path / "node", StoreConfig(sync=False))
    try:
        node = Node(
            config,
            store,
            address=("127.0.0.1", 7001),
            rng=rng,
            now=0.0,
            metrics=Registry(check_threads=True),
        )
        node.start(0.0, [])
        node.ready()
        stranger_addr = ("127.0.0.1", 7002)
        other = ClusterSettings(tree_fanout=4, tree_depth=8)
        stranger = Membership(
            "b" * 16, stranger_addr, MembershipConfig(cluster=other), random.Random(4)
        )
        for _, msg in stranger.join(0.0, [node.address]).send:
            node.receive(0.1, stranger_addr, msg)
        assert node.membership.refuses(stranger_addr)

        gossip = Dissemination(DisseminationConfig(), random.Random(5))
        gossip.enqueue("default", "k", b"\x00not even a state")
        [(_, deltas)] = gossip.tick(0.2, [node.address]).send
        node.receive(0.3, stranger_addr, deltas)
        node.receive(0.4, stranger_addr, {"t": "ae.roots", "round": 1, "roots": {}})
        assert nonzero(node.counters) == {"dropped_refused_peer": 2}
        assert node.ready().writes == []
        stats: dict[str, Any] = node.stats()
        assert stats["dissemination"]["deltas_received"] == 0
        assert stats["membership"]["peers_refused"] == 1

        # The same delta from a peer nobody refused reaches the store (and is refused
        # there as undecodable), so it was the refusal that stopped it above.
        node.receive(0.5, ("127.0.0.1", 7003), deltas)
        assert nonzero(node.counters) == {"dropped_refused_peer": 2, "dropped_bad_delta": 1}
    finally:
        store.close()


def test_the_operations_page_lists_every_metric_a_node_declares() -> None:
    registry = node_registry()
    page = DOC.read_text()
    assert splice(page, render(registry)) == page, (
        "docs/OPERATIONS.md is stale: run `python -m swarmnode.metricsdoc --write`"
    )
    # The composed node has every layer on: each section of `stats` has its metrics.
    sections = {metric.stats[0] for metric in registry.metrics() if metric.stats}
    assert sections >= {
        "api", "antientropy", "counters", "dissemination", "members", "membership",
        "resp", "store", "transport", "vectors", "writer",
    }  # fmt: skip
