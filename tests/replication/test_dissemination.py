"""Delta dissemination: eager push, bounded retransmission, batching, epidemic reach."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.errors import DecodeError
from swarmnode.replication.dissemination import ITEM_OVERHEAD, Dissemination, DisseminationConfig

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


def test_eager_pushes_come_at_most_one_per_push_interval_and_say_when_the_next_may():
    d = make(interval=10.0, push_interval=0.04)
    d.enqueue("ns", "a", b"1")
    assert d.tick(1.0, PEERS).send  # first push: at once
    d.enqueue("ns", "b", b"2")
    assert d.next_deadline() == pytest.approx(1.04)
    assert not d.tick(1.02, PEERS).send  # too soon after the last push
    out = d.tick(1.04, PEERS)
    assert ("ns", "b", b"2") in sent_items(out)


def test_a_retransmission_round_does_not_hold_the_next_write_back():
    d = make(interval=0.2, push_interval=0.04)
    d.enqueue("ns", "a", b"1")
    d.tick(0.0, PEERS)  # the push of a
    d.tick(0.2, PEERS)  # a retransmission round of a, no fresh delta
    d.enqueue("ns", "b", b"2")
    assert d.next_deadline() == pytest.approx(0.04)  # due since the last push
    assert ("ns", "b", b"2") in sent_items(d.tick(0.21, PEERS))


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
    assert len(out.send) == 2  # 50 deltas of 44 bytes: as few 1200-byte messages as hold them
    assert len({peer for peer, _ in out.send}) == 1
    for _, msg in out.send:
        assert sum(len(ns) + len(k) + len(p) + 12 for ns, k, p in msg["ds"]) <= 1200
    assert sorted(k for _, k, _ in sent_items(out)) == sorted(f"k{i}" for i in range(50))


def test_a_round_sends_each_peer_at_most_its_round_bytes_and_the_rest_next_round():
    d = make(max_message_bytes=200, max_round_bytes=300, fanout=1, interval=1.0)
    for i in range(50):
        # 47 bytes each: 4 to a message (188 bytes); a round ends once 300 are spent.
        d.enqueue("ns", f"k{i:02d}", b"v" * 30)
    first = sent_items(d.tick(0.0, PEERS))
    assert [k for _, k, _ in first] == [f"k{i:02d}" for i in range(49, 41, -1)]
    assert d.tick(0.5, PEERS).send == []  # no round before the interval, nothing fresh
    second = [k for _, k, _ in sent_items(d.tick(1.0, PEERS))]
    assert second == [f"k{i:02d}" for i in range(41, 33, -1)]  # the least sent, newest first


def test_a_delta_is_never_sent_back_to_the_peer_it_came_from_yet_leaves_the_queue():
    d = make(fanout=3, retransmit_mult=4)
    source = PEERS[0]
    d.enqueue("ns", "k", b"delta", source=source)
    sent_to: list = []
    t = 0.0
    while d.pending():
        sent_to += [peer for peer, msg in d.tick(t, PEERS[:2]).send]
        t += 1.0
        assert t < 100
    # Two rounds reaching both peers (direct_copies): the source's copies counted, not sent.
    assert sent_to == [PEERS[1], PEERS[1]]


def test_a_peer_a_copy_came_from_gets_no_more_copies_and_others_still_get_theirs():
    d = make(fanout=3, direct_copies=2)
    writer, other = PEERS[0], PEERS[1]
    d.enqueue("ns", "k", b"delta", source=writer)
    d.enqueue("ns", "j", b"other", source=writer)
    d.heard(other, [("ns", "k", b"delta"), ("ns", "unknown", b"x")])
    sent_to: dict[str, list] = {}
    t = 0.0
    while d.pending():
        for peer, msg in d.tick(t, [writer, other]).send:
            for _, key, _ in msg["ds"]:
                sent_to.setdefault(key, []).append(peer)
        t += 1.0
        assert t < 100
    # k: both peers hold it, so it leaves the queue unsent; j still reaches the other
    # peer its two times.
    assert sent_to == {"j": [other, other]}


def test_in_epidemic_rounds_a_peer_that_holds_a_delta_is_skipped_as_its_source_is():
    d = make(fanout=2, retransmit_mult=6)  # six transmissions, two of three peers a round
    d.enqueue("ns", "k", b"delta")
    d.heard(PEERS[1], [("ns", "k", b"delta")])
    receivers: list = []
    t = 0.0
    while d.pending():
        receivers += [peer for peer, msg in d.tick(t, PEERS[:3]).send if msg["ds"]]
        t += 1.0
        assert t < 100
    assert set(receivers) == {PEERS[0], PEERS[2]}


def test_when_rounds_reach_every_peer_each_gets_a_delta_direct_copies_times_a_round_apart():
    # Three nodes, fanout 3: every round reaches both peers. Writes keep arriving, so a
    # round runs at every tick (eager push); the epidemic limit would send each delta in
    # 6 transmissions, 3 to each peer, in back-to-back rounds.
    d = make(interval=0.2, fanout=3, retransmit_mult=6, direct_copies=2)
    peers = PEERS[:2]
    assert d.limit(len(peers) + 1) == 6
    copies: dict[tuple, list[float]] = {}
    t = 0.0
    for step in range(300):
        t = step * 0.01
        if step < 100:
            d.enqueue("ns", f"k{step}", b"delta")
        for peer, msg in d.tick(t, peers).send:
            for _, key, _ in msg["ds"]:
                copies.setdefault((peer, key), []).append(t)
    assert d.pending() == 0
    assert len(copies) == 2 * 100  # every write reached both peers
    for times in copies.values():
        assert len(times) == 2
        assert times[1] - times[0] >= 0.2 - 1e-9


def test_a_backlog_forwarded_from_one_peer_reaches_the_other_every_copy():
    # A forwarder's backlog, all of it from peer 0, drained in rounds of 1 KiB: rounds
    # reach both peers, peer 0 gets nothing back, and peer 1 still gets every copy.
    d = make(interval=0.2, fanout=3, direct_copies=2, max_round_bytes=1024)
    peers = PEERS[:2]
    for i in range(500):
        d.enqueue("ns", f"k{i:03d}", b"v" * 30, source=peers[0])
    copies: dict[str, int] = {}
    t = 0.0
    while d.pending():
        for peer, msg in d.tick(t, peers).send:
            assert peer == peers[1]
            for _, key, _ in msg["ds"]:
                copies[key] = copies.get(key, 0) + 1
        t += 0.2
        assert t < 100
    assert copies == {f"k{i:03d}": 2 for i in range(500)}


def test_a_direct_round_fills_each_message_first_fit_with_later_smaller_deltas():
    d = make(max_message_bytes=200)
    # 120, 120 and 60 bytes, sent newest first: the second does not fit beside the
    # first, the third does; the second then goes in a message of its own.
    for key, size in (("z", 60), ("y", 120), ("x", 120)):
        d.enqueue("ns", key, b"v" * (size - ITEM_OVERHEAD - 3))
    out = d.tick(0.0, PEERS[:2])
    for peer in PEERS[:2]:
        messages = [[k for _, k, _ in msg["ds"]] for to, msg in out.send if to == peer]
        assert messages == [["x", "z"], ["y"]]


def test_a_delta_bigger_than_the_budget_travels_alone():
    d = make(max_message_bytes=1200, fanout=1)
    d.enqueue("ns", "small", b"s")
    d.enqueue("ns", "big", b"B" * 5000)
    out = d.tick(0.0, PEERS)
    (_, alone), (_, rest) = out.send
    assert [k for _, k, _ in alone["ds"]] == ["big"]  # newest first among equals
    assert [k for _, k, _ in rest["ds"]] == ["small"]


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


class _QueueModel:
    """memberlist's queue order, stated plainly: send the least transmitted, newest first
    (among the first 256 in that order, packed greedily; a round's further messages to the
    same peer likewise among the deltas not yet in one), drop the most transmitted, oldest
    first."""

    def __init__(self, config: DisseminationConfig) -> None:
        self.config = config
        self.items: list[list] = []  # [seq, key, size, transmits]
        self.seq = 0

    def enqueue(self, key: str, size: int) -> None:
        self.items.append([self.seq, key, size, 0])
        self.seq += 1
        bound = self.config.max_queue
        if len(self.items) > bound:
            self.items.sort(key=lambda it: (it[3], -it[0]))
            del self.items[max(0, bound - max(1, bound // 10)) :]

    def round(self, limit: int) -> list[str]:
        """One round to one peer: messages until the round's bytes are spent, no delta twice."""
        taken: set[int] = set()
        sent: list[str] = []
        spent = 0
        while spent < self.config.max_round_bytes:
            candidates = sorted(
                (it for it in self.items if it[3] < limit and it[0] not in taken),
                key=lambda it: (it[3], -it[0]),
            )[:256]
            chosen, used = [], 0
            for it in candidates:
                if chosen and used + it[2] > self.config.max_message_bytes:
                    continue
                chosen.append(it)
                used += it[2]
                if used >= self.config.max_message_bytes:
                    break
            if not chosen:
                break
            for it in chosen:
                it[3] += 1
                taken.add(it[0])
            spent += used
            sent += [it[1] for it in chosen]
        return sent

    def forget(self, limit: int) -> None:
        self.items = [it for it in self.items if it[3] < limit]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.integers(0, 300)),
            st.tuples(st.just("tick"), st.integers(1, 4)),
        ),
        max_size=120,
    ),
    max_queue=st.integers(1, 40),
)
def test_the_queue_sends_and_drops_in_memberlists_order(steps, max_queue):
    config = DisseminationConfig(
        interval=0.1,
        fanout=1,
        retransmit_mult=2,
        max_message_bytes=300,
        max_round_bytes=700,
        max_queue=max_queue,
    )
    d = Dissemination(config, random.Random(0))
    model = _QueueModel(config)
    now, n = 0.0, 0
    for step, arg in steps:
        if step == "put":
            key = f"k{n}"
            n += 1
            d.enqueue("ns", key, b"v" * arg)
            model.enqueue(key, len("ns") + len(key) + arg + ITEM_OVERHEAD)
        else:
            peers = PEERS[:arg]
            now += 1.0
            sent = [k for _, k, _ in sent_items(d.tick(now, peers))]
            limit = d.limit(len(peers) + 1)
            assert sent == model.round(limit)
            model.forget(limit)
        assert d.pending() == len(model.items)
