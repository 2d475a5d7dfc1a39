"""Nodes whose cluster-wide settings differ never become members of each other.

Real `Membership` state machines on the simulated network: a node with another Merkle
tree shape (or tombstone grace, clock offset, protocol version) tries to join, and
both sides refuse it loudly, keep it out of every member list, and send it nothing
but the one-fact answer to its join that tells it why.
"""

from __future__ import annotations

import dataclasses
import logging
import random

import pytest

from swarmnode.membership import MemberDead, MemberJoined, Membership, MembershipConfig
from swarmnode.membership.compat import PROTOCOL_VERSION, ClusterSettings, Mismatch
from swarmnode.membership.events import PeerRefused
from swarmnode.membership.state import MemberState

from .simnet import SimNet, addr_of

LOCAL = MembershipConfig.local()
ODD = dataclasses.replace(LOCAL, cluster=ClusterSettings(tree_fanout=4, tree_depth=8))
FANOUT = Mismatch("antientropy.tree_fanout", 16, 4)
DEPTH = Mismatch("antientropy.tree_depth", 4, 8)
SETTLE = 40 * LOCAL.probe_interval
"""Virtual time for joins, retries, probes and push-pulls to have happened many times."""


def cluster_with_outsider(seed: int, outsider: MembershipConfig = ODD) -> SimNet:
    """Three nodes that agree, then a fourth with other settings joining through n0."""
    net = SimNet(seed, LOCAL, record=True)
    net.start_cluster(3)
    net.run_until(net.converged, within=SETTLE)
    net.add("odd", addr_of(3), config=outsider)
    net.join(addr_of(3), [addr_of(0)])
    return net


def members_seen(node: Membership) -> set[str]:
    return {m.node_id for m in node.members()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_node_with_another_tree_shape_never_becomes_a_member(seed):
    net = cluster_with_outsider(seed)
    net.run_for(SETTLE)
    odd = net.nodes[addr_of(3)]
    insiders = [net.nodes[addr_of(i)] for i in range(3)]
    for node in insiders:
        assert members_seen(node) == {"n0", "n1", "n2"}
    assert members_seen(odd) == {"odd"}
    assert net.converged() is False  # the outsider's own view is itself alone
    assert not [e for _, who, e in net.events_of(MemberJoined) if e.node_id == "odd"]
    assert not [e for _, who, e in net.events_of(MemberJoined) if who == "odd"]


def test_both_sides_report_the_setting_and_both_values():
    net = cluster_with_outsider(4)
    net.run_for(SETTLE)
    refusals = {(who, e.node_id): e for _, who, e in net.events_of(PeerRefused)}
    assert refusals[("n0", "odd")].mismatches == (FANOUT, DEPTH)
    assert refusals[("odd", "n0")].mismatches == (
        Mismatch("antientropy.tree_fanout", 4, 16),
        Mismatch("antientropy.tree_depth", 8, 4),
    )
    # Once per disagreement, however often the outsider retries its join.
    assert len([1 for _, who, e in net.events_of(PeerRefused) if who == "n0"]) == 1
    seed = net.nodes[addr_of(0)]
    assert seed.stats["peers_refused"] == 1
    assert seed.stats["messages_refused"] >= 3  # join retries every join_retry_interval
    [refused] = seed.refused()
    assert (refused.node_id, refused.addr, refused.mismatches) == (
        "odd",
        addr_of(3),
        (FANOUT, DEPTH),
    )
    assert refused.messages == seed.stats["messages_refused"]
    assert [r.node_id for r in net.nodes[addr_of(3)].refused()] == ["n0"]


def test_an_outsider_gets_nothing_but_the_answer_to_its_join():
    net = cluster_with_outsider(5)
    net.run_for(SETTLE)
    odd = addr_of(3)
    to_odd = [msg for _, src, dst, msg in net.sent if dst == odd]
    assert to_odd, "the seed answers the outsider's joins"
    for msg in to_odd:
        assert msg["t"] == "swim.pp" and msg["r"] is False
        assert [m["n"] for m in msg["ms"]] == ["n0"]  # its own alive fact, nothing else
    # and what the outsider sends (its joins) never earns it a probe, gossip or data.
    assert {msg["t"] for _, src, dst, msg in net.sent if src == odd} == {"swim.pp"}


def test_the_refusal_is_logged_at_warning_with_the_peer_setting_and_values(caplog):
    with caplog.at_level(logging.WARNING, logger="swarmnode.membership"):
        net = cluster_with_outsider(6)
        net.run_for(SETTLE)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        f"event=peer_refused peer=odd addr={addr_of(3)[0]}:{addr_of(3)[1]} "
        "setting=antientropy.tree_fanout ours=16 theirs=4 node_id=n0"
    ) in lines
    assert any(
        line.startswith("event=peer_refused peer=n0 ")
        and "setting=antientropy.tree_fanout ours=4 theirs=16 node_id=odd" in line
        for line in lines
    )


@pytest.mark.parametrize(
    "settings, mismatch",
    [
        (
            ClusterSettings(tombstone_grace_ms=3_600_000),
            Mismatch("store.tombstone_grace", 86400, 3600),
        ),
        (ClusterSettings(max_clock_offset_ms=100), Mismatch("store.max_clock_offset_ms", 500, 100)),
        (ClusterSettings(protocol=3), Mismatch("protocol_version", PROTOCOL_VERSION, 3)),
    ],
)
def test_every_shared_setting_is_checked(settings, mismatch):
    net = cluster_with_outsider(7, dataclasses.replace(LOCAL, cluster=settings))
    net.run_for(SETTLE)
    assert members_seen(net.nodes[addr_of(0)]) == {"n0", "n1", "n2"}
    [refusal] = [e for _, who, e in net.events_of(PeerRefused) if who == "n0"]
    assert refusal.mismatches == (mismatch,)


def test_a_peer_from_before_the_settings_check_is_refused_as_protocol_version_1():
    node = Membership("me", ("127.0.0.1", 7000), LOCAL, random.Random(1))
    node.tick(0.0)
    old = {"n": "old", "i": 0, "s": 0, "a": ["127.0.0.2", 7000]}  # a version 1 alive fact
    out = node.receive(
        0.1, ("127.0.0.2", 7000), {"t": "swim.pp", "f": "old", "r": True, "ms": [old]}
    )
    assert [e.mismatches for e in out.events] == [(Mismatch("protocol_version", 2, 1),)]
    [(to, reply)] = out.send
    assert to == ("127.0.0.2", 7000) and [m["n"] for m in reply["ms"]] == ["me"]
    assert members_seen(node) == {"me"}
    # Its pings are not answered: it cannot hold this node as a member either.
    ping = {"t": "swim.ping", "f": "old", "s": 1, "n": "me"}
    assert node.receive(0.2, ("127.0.0.2", 7000), ping).send == []


def test_a_member_that_comes_back_with_other_settings_is_expelled():
    net = SimNet(8, LOCAL, record=True)
    net.start_cluster(4)
    net.run_until(net.converged, within=SETTLE)
    net.crash(addr_of(3))
    net.add("n3", addr_of(3), config=ODD)
    net.join(addr_of(3), [addr_of(0)])
    insiders = ["n0", "n1", "n2"]
    net.run_until(lambda: net.all_see(["n3"], MemberState.DEAD), within=SETTLE)
    net.run_for(SETTLE)
    for i in range(3):
        node = net.nodes[addr_of(i)]
        assert node.member("n3").state is MemberState.DEAD
        assert "n3" not in {node_id for node_id, _ in node.live_peers()}
    assert members_seen(net.nodes[addr_of(3)]) == {"n3"}
    assert {e.node_id for _, who, e in net.events_of(MemberDead) if who in insiders} == {"n3"}


def test_a_refused_node_that_comes_back_with_matching_settings_joins():
    net = cluster_with_outsider(9)
    net.run_for(SETTLE)
    net.crash(addr_of(3))
    net.add("odd", addr_of(3))  # same id, now with the cluster's settings
    net.join(addr_of(3), [addr_of(0)])
    net.run_until(net.converged, within=SETTLE)
    assert all(not net.nodes[addr_of(i)].refused() for i in range(4))


def test_the_address_of_a_refused_peer_is_known_so_its_other_traffic_can_be_dropped():
    net = cluster_with_outsider(10)
    net.run_for(SETTLE)
    seed = net.nodes[addr_of(0)]
    assert seed.refuses(addr_of(3))
    assert not seed.refuses(addr_of(1))
    # Back at the same address with matching settings: no longer refused.
    net.crash(addr_of(3))
    net.add("odd", addr_of(3))
    net.join(addr_of(3), [addr_of(0)])
    net.run_until(net.converged, within=SETTLE)
    assert not seed.refuses(addr_of(3))


def test_a_refused_peer_that_moves_is_refused_at_its_new_address():
    node = Membership("me", ("127.0.0.1", 7000), LOCAL, random.Random(1))
    node.tick(0.0)
    for t, host in ((0.1, "127.0.0.2"), (0.2, "127.0.0.9")):
        old = {"n": "old", "i": 0, "s": 0, "a": [host, 7000]}
        node.receive(t, (host, 7000), {"t": "swim.pp", "f": "old", "r": False, "ms": [old]})
        node.assert_invariants()
    assert node.refuses(("127.0.0.9", 7000)) and not node.refuses(("127.0.0.2", 7000))
    assert node.stats["peers_refused"] == 1 and node.stats["messages_refused"] == 2
