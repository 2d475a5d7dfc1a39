"""A write on any node of a running cluster reaches every node, for every kind of entry.

One cluster of four real node processes serves the whole module; each test
uses keys of its own. Writes that race each other are started together from
threads, one per node; whichever order the nodes see them in, every node must
end in the state the CRDT's join defines.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nodeproc import remove_dir, short_dir

from swarmnode.errors import NotFound, TooLarge

from .procs import Cluster, read_value

NS = "default"
MAX_VALUE_BYTES = 1 << 20
"""The store's default `max_value_bytes`: the msgpack size of the largest value."""
BIN32_HEADER = 5


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = short_dir("snc-")
    c = Cluster.start(base / "c", 4)
    yield c
    c.close()
    remove_dir(base)


def on_all_at_once(cluster: Cluster, action: Callable[[int], Any]) -> list[Any]:
    """Run `action(i)` for every node i in its own thread, released together."""
    results: list[Any] = [None] * len(cluster)
    errors: list[BaseException] = []
    gate = threading.Barrier(len(cluster))
    clients = [cluster.client(i) for i in cluster.indexes()]  # connect before the race
    assert len(clients) == len(cluster)

    def run(i: int) -> None:
        try:
            gate.wait()
            results[i] = action(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in cluster.indexes()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_a_put_on_any_node_is_readable_on_every_node(cluster: Cluster) -> None:
    for i in cluster.indexes():
        cluster.client(i).put(NS, f"put-from-{i}", {"writer": i, "text": "hello"})
    for i in cluster.indexes():
        cluster.wait_everywhere(
            read_value(NS, f"put-from-{i}"),
            lambda v, i=i: v == {"writer": i, "text": "hello"},
            f"node {i}'s put on every node",
        )


def test_an_overwrite_replaces_the_value_on_every_node(cluster: Cluster) -> None:
    cluster.client(0).put(NS, "overwritten", "first")
    cluster.wait_everywhere(read_value(NS, "overwritten"), lambda v: v == "first", "first value")
    cluster.client(3).put(NS, "overwritten", "second")
    cluster.wait_everywhere(read_value(NS, "overwritten"), lambda v: v == "second", "overwrite")


def test_a_delete_on_one_node_removes_the_key_from_every_node(cluster: Cluster) -> None:
    cluster.client(1).put(NS, "doomed", "here")
    cluster.wait_everywhere(read_value(NS, "doomed"), lambda v: v == "here", "the put")
    assert cluster.client(2).delete(NS, "doomed")["deleted"] is True
    cluster.wait_everywhere(read_value(NS, "doomed"), lambda v: v is NotFound, "the delete")


def test_counters_converge_to_the_sum_of_increments_made_on_all_nodes(cluster: Cluster) -> None:
    steps = {0: [1, 1, 1], 1: [5, -2], 2: [10], 3: [-1, -1, 7, 100]}
    expected = sum(sum(s) for s in steps.values())

    def increments(i: int) -> None:
        for by in steps[i]:
            cluster.client(i).incr(NS, "hits", by)

    on_all_at_once(cluster, increments)
    cluster.wait_everywhere(
        lambda c: c.get(NS, "hits")["value"],
        lambda v: v == expected,
        f"the counter to read {expected}",
    )


def test_sets_converge_to_every_member_added_and_not_removed(cluster: Cluster) -> None:
    def adds(i: int) -> None:
        cluster.client(i).sadd(NS, "crew", [f"agent-{i}", "shared"])

    on_all_at_once(cluster, adds)
    everyone = sorted(["shared", *(f"agent-{i}" for i in cluster.indexes())])
    cluster.wait_everywhere(
        lambda c: c.smembers(NS, "crew")["members"], lambda m: m == everyone, "all adds"
    )
    cluster.client(1).srem(NS, "crew", ["agent-0", "shared"])
    left = sorted(f"agent-{i}" for i in cluster.indexes() if i != 0)
    cluster.wait_everywhere(
        lambda c: c.smembers(NS, "crew")["members"], lambda m: m == left, "the removal"
    )


def test_racing_lww_writes_settle_on_the_highest_timestamp_and_node_everywhere(
    cluster: Cluster,
) -> None:
    def put(i: int) -> tuple[int, str, str]:
        value = f"from-{i}"
        ts = cluster.client(i).put(NS, "contended", value)["ts"]
        return ts, cluster.nodes[i].node_id or "", value

    writes = on_all_at_once(cluster, put)
    winner = max(writes)[2]
    cluster.wait_everywhere(
        read_value(NS, "contended"), lambda v: v == winner, f"{winner!r} (of {writes})"
    )


def test_a_value_of_the_maximum_size_replicates_intact(cluster: Cluster) -> None:
    big = bytes(range(256)) * ((MAX_VALUE_BYTES - BIN32_HEADER) // 256)
    big += b"\x5a" * (MAX_VALUE_BYTES - BIN32_HEADER - len(big))
    digest = hashlib.sha256(big).hexdigest()
    cluster.client(2).put(NS, "big", big)
    cluster.wait_everywhere(
        lambda c: hashlib.sha256(c.get(NS, "big")["value"]).hexdigest(),
        lambda d: d == digest,
        "the 1 MiB value on every node",
    )
    with pytest.raises(TooLarge):
        cluster.client(2).put(NS, "too-big", big + b"!")


def test_several_large_values_written_at_once_all_arrive(cluster: Cluster) -> None:
    values = {i: bytes([i]) * (300_000 + i) for i in cluster.indexes()}

    def put(i: int) -> None:
        cluster.client(i).put(NS, f"large-{i}", values[i])

    on_all_at_once(cluster, put)
    for i, value in values.items():
        cluster.wait_everywhere(
            lambda c, i=i: c.get(NS, f"large-{i}")["value"],
            lambda v, value=value: v == value,
            f"node {i}'s large value",
        )
