"""Owner-group deltas: sent straight to each owner, acknowledged, retransmissions bounded."""

from __future__ import annotations

import random

import pytest

from swarmnode.errors import DecodeError
from swarmnode.replication.dissemination import Dissemination, DisseminationConfig
from swarmnode.replication.owners import MSG_ACK, acknowledgement

ME = ("10.0.0.1", 7000)
OWNERS = [("10.0.0.1", 7001 + i) for i in range(4)]


def make(**kw: object) -> Dissemination:
    return Dissemination(DisseminationConfig(interval=0.1, **kw), random.Random(1))


def run(d: Dissemination, seconds: float, answer: set) -> dict:
    """Tick every 10 ms for `seconds`; peers in `answer` acknowledge what they receive.
    Returns every delta each peer received, duplicates included."""
    received: dict = {}
    t = 0.0
    while t < seconds:
        out = d.tick(t, [])
        for peer, msg in out.send:
            received.setdefault(peer, []).extend(tuple(x) for x in msg["ds"])
            if peer in answer:
                for _, ack in acknowledgement(peer, msg).send:
                    d.acked(peer, ack)
        t += 0.01
    return received


@pytest.mark.parametrize("r", [2, 3, 5])
def test_an_acknowledged_delta_reaches_each_owner_once_and_is_never_sent_again(r):
    d = make()
    group = tuple(OWNERS[: r - 1])
    d.enqueue("ns", "k", b"delta", group)
    received = run(d, 30.0, answer=set(group))
    assert received == {peer: [("ns", "k", b"delta")] for peer in group}
    assert d.pending() == 0 and d.next_deadline() is None


@pytest.mark.parametrize("r", [2, 3, 11])
def test_an_unacknowledged_delta_is_sent_at_most_the_group_limit_then_given_up(r):
    d = make(retransmit_mult=6)
    group = tuple(("10.0.0.2", 9000 + i) for i in range(r - 1))
    d.enqueue("ns", "k", b"delta", group)
    received = run(d, 60.0, answer=set())
    limit = d.limit(r)  # memberlist's mult * ceil(log10(n + 1)), n the group's size
    assert limit == 6 * (1 if r < 10 else 2)
    assert {peer: len(got) for peer, got in received.items()} == dict.fromkeys(group, limit)
    assert d.pending() == 0
    assert d.stats["queue_dropped"] == len(group)


def test_a_lost_message_is_sent_again_until_acknowledged():
    d = make()
    peer = OWNERS[0]
    d.enqueue("ns", "k", b"delta", (peer,))
    first = d.tick(0.0, [])
    assert len(first.send) == 1  # lost: no acknowledgement
    assert not d.tick(0.05, []).send  # not due before the interval
    again = d.tick(0.1, [])
    assert [m["ds"] for _, m in again.send] == [[["ns", "k", b"delta"]]]
    ((_, ack),) = acknowledgement(peer, again.send[0][1]).send
    d.acked(peer, ack)
    assert d.pending() == 0
    assert not run(d, 10.0, answer=set())


def test_deltas_of_different_groups_share_one_message_per_peer():
    d = make()
    for i in range(20):
        d.enqueue("ns", f"k{i}", b"x", (OWNERS[0], OWNERS[1 + i % 3]))
    out = d.tick(0.0, [])
    by_peer: dict = {}
    for peer, msg in out.send:
        by_peer.setdefault(peer, []).append(len(msg["ds"]))
    assert by_peer[OWNERS[0]] == [20]
    assert sorted(sum(v) for p, v in by_peer.items() if p != OWNERS[0]) == [6, 7, 7]


def test_an_acknowledgement_from_another_peer_acknowledges_nothing():
    d = make()
    d.enqueue("ns", "k", b"delta", (OWNERS[0],))
    ((_, msg),) = d.tick(0.0, []).send
    ((_, ack),) = acknowledgement(OWNERS[0], msg).send
    d.acked(OWNERS[1], ack)
    assert d.pending() == 1


def test_epidemic_gossip_asks_for_no_acknowledgement():
    d = make()
    d.enqueue("ns", "k", b"delta")
    out = d.tick(0.0, OWNERS)
    assert out.send
    assert all(not acknowledgement(peer, msg).send for peer, msg in out.send)


def test_acknowledgements_answer_the_id_asked_for():
    ((to, ack),) = acknowledgement(OWNERS[0], {"t": "d.deltas", "ds": [], "a": 42}).send
    assert to == OWNERS[0] and ack == {"t": MSG_ACK, "a": [42]}


@pytest.mark.parametrize("msg", [{"t": "d.deltas", "ds": [], "a": "x"}, {"t": "d.deltas", "a": -1}])
def test_a_malformed_id_raises_decode_error(msg):
    with pytest.raises(DecodeError):
        acknowledgement(OWNERS[0], msg)


@pytest.mark.parametrize(
    "ack", [{"t": MSG_ACK}, {"t": MSG_ACK, "a": 3}, {"t": MSG_ACK, "a": ["x"]}]
)
def test_a_malformed_acknowledgement_raises_decode_error(ack):
    with pytest.raises(DecodeError):
        make().acked(OWNERS[0], ack)


def test_the_owner_queue_is_bounded():
    d = make(max_queue=10)
    for i in range(30):
        d.enqueue("ns", f"k{i}", b"x", (OWNERS[0],))
    assert d.pending() <= 10
    assert d.stats["queue_dropped"] >= 20
