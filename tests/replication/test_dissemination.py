"""Delta dissemination: eager push, bounded retransmission, batching, epidemic reach."""

from __future__ import annotations

import math
import random

import pytest

from swarmnode.errors import DecodeError
from swarmnode.replication.dissemination import Dissemination, DisseminationConfig

PEERS = [("127.0.0.1", 7000 + i) for i in range(10)]


def make(seed: int = 1, **kw: object) -> Dissemination:
    return Dissemination(DisseminationConfig(**kw), random.Random(seed))


def sent_items(out) -> list[tuple[str, str, bytes]]:
    return [tuple(item) for _, msg in out.send for item in msg["ds"]]


def test_a_fresh_delta_goes_out_on_the_next_tick_without_waiting_for_the_round():
    d = make(interval=10.0)
    d.tick(0.0, PEERS)  # nothing queued: starts no round
    d.enqueue("ns", "k", b"delta")
    out = d.tick(0.001, PEERS)
    assert len(out.send) == 3  # fanout
    assert {addr for addr, _ in out.send} <= set(PEERS)
    assert len({addr for addr, _ in out.send}) == 3


def test_each_delta_is_sent_exactly_its_retransmit_limit_then_forgotten():
    d = make(interval=0.1, fanout=3, retransmit_mult=4)
    d.enqueue("ns", "k", b"delta")
    limit = d.limit(len(PEERS) + 1)
    assert limit == 4 * math.ceil(math.log10(len(PEERS) + 2))
    sends = 0
    t = 0.0
    for _ in range(100):
        t += 0.1
        sends += len(sent_items(d.tick(t, PEERS)))
    assert sends == limit
    assert d.pending() == 0


def test_nothing_is_sent_between_rounds_once_fresh_deltas_went_out():
    d = make(interval=1.0)
    d.enqueue("ns", "k", b"x")
    assert d.tick(0.0, PEERS).send
    assert not d.tick(0.5, PEERS).send
    assert d.tick(1.0, PEERS).send


def test_small_deltas_share_messages_within_the_budget():
    d = make(max_message_bytes=1200, fanout=1)
    for i in range(50):
        d.enqueue("ns", f"k{i}", b"v" * 20)
    out = d.tick(0.0, PEERS)
    assert len(out.send) == 1
    _, msg = out.send[0]
    size = sum(len(ns) + len(k) + len(p) + 12 for ns, k, p in msg["ds"])
    assert 1 < len(msg["ds"]) < 50
    assert size <= 1200


def test_a_delta_bigger_than_the_budget_travels_alone():
    d = make(max_message_bytes=1200, fanout=1)
    d.enqueue("ns", "small", b"s")
    d.enqueue("ns", "big", b"B" * 5000)
    out = d.tick(0.0, PEERS)
    ((_, msg),) = out.send
    assert [k for _, k, _ in msg["ds"]] == ["big"]  # newest first among equals


def test_queue_is_bounded_and_drops_the_most_transmitted_first():
    d = make(max_queue=10, fanout=1)
    d.enqueue("ns", "old", b"o")
    d.tick(0.0, PEERS)  # "old" transmitted once
    for i in range(10):
        d.enqueue("ns", f"new{i}", b"n")
    # Past the bound the queue is trimmed to 90% in one go, oldest news first.
    assert d.pending() == 9
    assert d.stats["queue_dropped"] == 2
    out = d.tick(1.0, PEERS)
    assert "old" not in [k for _, k, _ in sent_items(out)]


@pytest.mark.parametrize(
    "msg",
    [
        {"t": "d.deltas"},
        {"t": "d.deltas", "ds": "x"},
        {"t": "d.deltas", "ds": [["ns", "k"]]},
        {"t": "d.deltas", "ds": [["ns", 1, b"x"]]},
        {"t": "d.deltas", "ds": [["ns", "k", "not-bytes"]]},
        {"t": "d.deltas", "ds": [None]},
    ],
)
def test_malformed_messages_raise_decode_error(msg):
    with pytest.raises(DecodeError):
        make().receive(msg)


@pytest.mark.parametrize("n", [25, 100])
def test_forwarding_new_deltas_reaches_every_node_in_few_rounds(n):
    """Infection-style spread: forward only what was new reaches all n nodes."""
    rng = random.Random(n)
    addrs = [("10.0.0.1", i) for i in range(n)]
    nodes = {
        a: Dissemination(DisseminationConfig(interval=1.0), random.Random(rng.random()))
        for a in addrs
    }
    have = {addrs[0]}
    nodes[addrs[0]].enqueue("ns", "k", b"delta")
    rounds = 0
    t = 0.0
    while len(have) < n and rounds < 50:
        rounds += 1
        t += 1.0
        deliveries = []
        for a, d in nodes.items():
            peers = [p for p in addrs if p != a]
            deliveries.extend(d.tick(t, peers).send)
        for to, msg in deliveries:
            for ns, key, payload in nodes[to].receive(msg):
                if to not in have:
                    have.add(to)
                    nodes[to].enqueue(ns, key, payload)
    assert len(have) == n
    assert rounds <= 4 * math.ceil(math.log2(n))


def test_with_gossip_disabled_nothing_is_queued_or_sent():
    d = make(enabled=False)
    d.enqueue("ns", "k", b"delta")
    assert d.pending() == 0 and d.next_deadline() is None
    assert d.tick(0.0, [("10.0.0.2", 1)]).send == []
    assert d.stats["deltas_queued"] == d.stats["deltas_sent"] == 0
