"""The virtual network delivers, loses, duplicates, delays and cuts packets as configured."""

from __future__ import annotations

import random

import pytest

from swarmnode.sim.loop import EventLoop
from swarmnode.sim.network import Latency, LinkProfile, Network

A, B, C = ("10.0.0.1", 7117), ("10.0.0.2", 7117), ("10.0.0.3", 7117)


def make(profile: LinkProfile | None = None, seed: int = 1) -> tuple[EventLoop, Network, list]:
    loop = EventLoop()
    net = Network(loop.call_later, random.Random(seed), profile)
    got: list = []
    for addr in (A, B, C):
        net.attach(addr, lambda src, msg, dst=addr: got.append((loop.now, src, dst, msg)))
    return loop, net, got


def ping(i: int = 0) -> dict:
    return {"t": "test.ping", "i": i}


def test_a_message_arrives_after_the_link_latency_with_its_content_intact():
    loop, net, got = make(LinkProfile(latency=Latency(0.1, 0.0, "fixed")))
    net.send(A, B, [{"t": "test.x", "b": b"\x00\xff", "n": [1, "two", None]}])
    loop.run_until(0.099)
    assert got == []
    loop.run_until(1.0)
    assert got == [(0.1, A, B, {"t": "test.x", "b": b"\x00\xff", "n": [1, "two", None]})]


def test_a_partition_cuts_both_directions_between_groups_but_not_within():
    loop, net, got = make()
    net.partition([A], [B, C])
    for src, dst in ((A, B), (B, A), (B, C), (C, B)):
        net.send(src, dst, [ping()])
    loop.run_until(1.0)
    assert sorted((src, dst) for _, src, dst, _ in got) == [(B, C), (C, B)]
    net.heal()
    net.send(A, B, [ping()])
    loop.run_until(2.0)
    assert got[-1][1:3] == (A, B)


def test_a_one_way_cut_loses_one_direction_only():
    loop, net, got = make()
    net.cut_one_way([A], [B])
    net.send(A, B, [ping()])
    net.send(B, A, [ping()])
    loop.run_until(1.0)
    assert [(src, dst) for _, src, dst, _ in got] == [(B, A)]


def test_a_cut_also_loses_packets_already_in_flight():
    loop, net, got = make(LinkProfile(latency=Latency(0.1, 0.0, "fixed")))
    net.send(A, B, [ping()])
    loop.run_until(0.05)
    net.partition([A], [B])
    loop.run_until(1.0)
    assert got == []
    assert net.stats.dropped_cut == 1


def test_loss_drops_about_its_share_of_datagrams():
    loop, net, got = make(LinkProfile(loss=0.3))
    for i in range(2000):
        net.send(A, B, [ping(i)])
    loop.run_until(1.0)
    assert 0.25 < net.stats.dropped_loss / 2000 < 0.35
    assert len(got) + net.stats.dropped_loss == 2000


def test_duplication_delivers_some_datagrams_twice():
    loop, net, got = make(LinkProfile(duplicate=0.5))
    for i in range(200):
        net.send(A, B, [ping(i)])
    loop.run_until(1.0)
    assert len(got) == 200 + net.stats.duplicated
    assert net.stats.duplicated > 50


def test_reordering_lets_later_datagrams_overtake_earlier_ones():
    loop, net, got = make(
        LinkProfile(latency=Latency(0.01, 0.0, "fixed"), reorder=0.5, reorder_delay=0.05)
    )
    for i in range(100):
        net.send(A, B, [ping(i)])
        loop.run_until(loop.now + 0.001)
    loop.run_until(2.0)
    order = [msg["i"] for *_, msg in got]
    assert sorted(order) == list(range(100))
    assert order != sorted(order)


def test_messages_to_one_peer_share_datagrams_and_big_ones_go_over_a_stream():
    loop, net, got = make(LinkProfile(loss=1.0))
    net.send(A, B, [ping(i) for i in range(10)] + [{"t": "test.big", "blob": b"x" * 5000}])
    loop.run_until(1.0)
    assert net.stats.messages == 11
    assert net.stats.datagrams == 1
    assert net.stats.streamed == 1
    assert [msg["t"] for *_, msg in got] == ["test.big"]


def test_a_message_receivers_would_refuse_fails_at_the_sender():
    _, net, _ = make()
    with pytest.raises(ValueError):
        net.send(A, B, [{"t": "test.bad", "x": {1, 2}}])
    with pytest.raises(ValueError):
        net.send(A, B, [{"no type": 1}])


def test_nothing_is_delivered_to_a_detached_address():
    loop, net, got = make()
    net.detach(B)
    net.send(A, B, [ping()])
    loop.run_until(1.0)
    assert got == []
    assert net.stats.dropped_down == 1


def test_the_same_seed_draws_the_same_fate_for_every_packet():
    def fates(seed: int) -> list:
        loop, net, got = make(LinkProfile(latency=Latency(0.01, 1.0, "lognormal"), loss=0.2), seed)
        for i in range(300):
            net.send(A, B, [ping(i)])
        loop.run_until(5.0)
        return [(t, msg["i"]) for t, *_, msg in got]

    assert fates(5) == fates(5)
    assert fates(5) != fates(6)
