"""Partitions longer than the suspicion timeout heal by themselves, and concurrent writes merge.

Two ways of cutting a cluster, both with real processes:

- a two-sided partition: four keyed nodes, of which two are given a new
  cluster key and reload it (SIGHUP). Each half keeps running and taking
  writes but drops the other half's packets (`dropped_auth`), until both
  halves declare each other dead. Writes made on both sides meanwhile are
  concurrent for certain, which is what the conflict policies are about.
  Giving the old key back heals the network; the halves must find each other
  again (dead members are retried) and converge.
- a hung node: SIGSTOP until the others declare it dead, SIGCONT, and it must
  refute its death and catch up.

The two-sided scenario is run once for the module; each test checks one
consequence of it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from nodeproc import remove_dir, short_dir

from swarmnode.transport import generate_key_file

from .procs import Cluster, read_value, wait_for

NS = "default"
MV_NS = "drafts"
LEFT, RIGHT = (0, 1), (2, 3)


@dataclass
class Healed:
    cluster: Cluster
    lww: list[tuple[int, str, str]] = field(default_factory=list)
    increments: int = 0
    dropped_auth: dict[int, int] = field(default_factory=dict)


def members_state(cluster: Cluster, observer: int, target: int) -> str | None:
    view = cluster.members(observer)
    member = view.get(cluster.nodes[target].node_id or "")
    return member["state"] if member else None


@pytest.fixture(scope="module")
def healed() -> Iterator[Healed]:
    base = short_dir("snc-")
    cluster = Cluster.start(base / "c", 4, keyed=True)
    out = Healed(cluster)
    try:
        c = cluster.client
        c(0).ns_init(MV_NS, policy="mv")
        c(0).sadd(NS, "team", ["x", "y"])
        c(0).incr(NS, "total", 1)
        out.increments = 1
        cluster.wait_everywhere(
            lambda cl: (cl.ns_stats(MV_NS)["policy"], cl.smembers(NS, "team")["members"]),
            lambda seen: seen == ("mv", ["x", "y"]),
            "the namespace definition and the set before the partition",
        )
        cluster.wait_everywhere(read_value(NS, "total"), lambda v: v == 1, "the counter")

        other_key = base / "other.key"
        generate_key_file(other_key)
        cluster.rekey(RIGHT, other_key)
        for side, others in ((LEFT, RIGHT), (RIGHT, LEFT)):
            for target in others:
                cluster.wait_state(target, "dead", side)

        for writer, value in ((0, "left"), (2, "right")):
            ts = c(writer).put(NS, "lww", value)["ts"]
            out.lww.append((ts, cluster.nodes[writer].node_id or "", value))
            c(writer + 1).put(MV_NS, "plan", f"plan-{value}")
        for i in cluster.indexes():
            c(i).incr(NS, "total", 10 + i)
            out.increments += 10 + i
        c(0).srem(NS, "team", ["x"])  # removed on the left ...
        c(2).sadd(NS, "team", ["x"])  # ... while re-added on the right: add wins
        c(1).srem(NS, "team", ["y"])  # removed, and nobody re-adds it
        c(3).sadd(NS, "team", ["z"])

        for i in cluster.indexes():
            out.dropped_auth[i] = cluster.stats(i)["transport"]["dropped_auth"]
        assert cluster.master_key is not None
        cluster.rekey(RIGHT, cluster.master_key)
        cluster.wait_all_alive()
        yield out
    finally:
        cluster.close()
        remove_dir(base)


def test_halves_that_declared_each_other_dead_merge_again(healed: Healed) -> None:
    cluster = healed.cluster
    # A wait, not a snapshot: on a loaded machine a probe may briefly suspect a live node.
    cluster.wait_everywhere(
        lambda c: sorted(m["state"] for m in c.members()["members"]),
        lambda states: states == ["alive"] * 4,
        "four alive members on every node",
    )
    assert all(n > 0 for n in healed.dropped_auth.values()), healed.dropped_auth


def test_concurrent_lww_writes_settle_on_the_higher_timestamp_and_node(healed: Healed) -> None:
    winner = max(healed.lww)[2]
    healed.cluster.wait_everywhere(
        read_value(NS, "lww"), lambda v: v == winner, f"{winner!r} of {healed.lww}"
    )


def test_concurrent_mv_writes_become_siblings_on_every_node(healed: Healed) -> None:
    def siblings(c: Any) -> tuple[bool, list[str]]:
        got = c.get(MV_NS, "plan")
        return got["conflict"], sorted(s["value"] for s in got["siblings"])

    healed.cluster.wait_everywhere(
        siblings, lambda s: s == (True, ["plan-left", "plan-right"]), "both siblings"
    )


def test_counter_sums_the_increments_of_both_sides(healed: Healed) -> None:
    healed.cluster.wait_everywhere(
        read_value(NS, "total"), lambda v: v == healed.increments, f"{healed.increments}"
    )


def test_set_keeps_a_member_re_added_concurrently_with_its_removal(healed: Healed) -> None:
    healed.cluster.wait_everywhere(
        lambda c: c.smembers(NS, "team")["members"], lambda m: m == ["x", "z"], "add-wins set"
    )


def test_a_node_hung_past_the_suspicion_timeout_refutes_and_catches_up(
    make_cluster: Any,
) -> None:
    cluster: Cluster = make_cluster(3)
    hung = 2
    cluster.client(hung)  # connect now: a stopped node cannot accept connections
    cluster.pause(hung)
    cluster.wait_state(hung, "dead", [0, 1])
    cluster.client(0).put(NS, "while-hung", "from the live side")
    cluster.client(1).incr(NS, "during", 2)

    queued: list[Any] = []
    writer = threading.Thread(
        target=lambda: queued.append(cluster.client(hung).incr(NS, "during", 3))
    )
    writer.start()  # sits in the hung node's socket until it runs again
    cluster.resume(hung)
    writer.join()
    assert queued, "the write queued on the hung node was not answered"

    cluster.wait_all_alive()
    cluster.wait_everywhere(
        read_value(NS, "while-hung"), lambda v: v == "from the live side", "the live side's put"
    )
    cluster.wait_everywhere(read_value(NS, "during"), lambda v: v == 5, "both increments")
    hung_id = cluster.nodes[hung].node_id or ""
    incarnations = [cluster.members(i)[hung_id]["incarnation"] for i in (0, 1)]
    assert min(incarnations) >= 1, f"the hung node never refuted its death: {incarnations}"
    wait_for(lambda: members_state(cluster, hung, 0) == "alive", "the hung node to see node 0")
