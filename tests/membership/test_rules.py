"""SWIM's rules, one sentence each, checked on a single node through `receive`/`tick`.

Facts are handed to the node as the piggyback of a gossip message from a
third member, exactly as they would arrive from the network.
"""

from __future__ import annotations

import random

import pytest

from swarmnode.membership import (
    MemberAlive,
    MemberDead,
    Membership,
    MembershipConfig,
    MemberState,
    MemberSuspect,
)

ME = ("127.0.0.1", 7000)
PEER = ("127.0.0.2", 7000)
OTHER = ("127.0.0.3", 7000)
CONFIG = MembershipConfig.local()


SETTINGS = list(CONFIG.cluster.to_wire())
"""What every alive fact of a version 2 node carries (see `membership/compat.py`)."""


def fact(node_id, inc, state, addr=None, by=None, meta=None):
    wire = {"n": node_id, "i": inc, "s": int(state)}
    if state is MemberState.ALIVE:
        wire["c"] = SETTINGS
    if addr is not None:
        wire["a"] = list(addr)
    if by is not None:
        wire["b"] = by
    if meta is not None:
        wire["m"] = meta
    return wire


def gossip(*facts, sender="other"):
    return {"t": "swim.gossip", "f": sender, "g": list(facts)}


def node_with_peer(peer_inc: int = 0) -> Membership:
    node = Membership("me", ME, CONFIG, random.Random(1))
    node.tick(0.0)
    node.receive(0.0, OTHER, gossip(fact("other", 0, MemberState.ALIVE, OTHER)))
    node.receive(0.0, OTHER, gossip(fact("peer", peer_inc, MemberState.ALIVE, PEER)))
    return node


def state_of(node: Membership, node_id: str) -> tuple[MemberState, int]:
    info = next(m for m in node.members() if m.node_id == node_id)
    return info.state, info.incarnation


def test_alive_with_higher_incarnation_overrides_suspect():
    node = node_with_peer()
    node.receive(1.0, OTHER, gossip(fact("peer", 0, MemberState.SUSPECT, by="other")))
    out = node.receive(1.1, OTHER, gossip(fact("peer", 1, MemberState.ALIVE, PEER)))
    assert state_of(node, "peer") == (MemberState.ALIVE, 1)
    assert [type(e) for e in out.events] == [MemberAlive]


def test_suspect_overrides_alive_at_the_same_incarnation():
    node = node_with_peer(peer_inc=3)
    out = node.receive(1.0, OTHER, gossip(fact("peer", 3, MemberState.SUSPECT, by="other")))
    assert state_of(node, "peer") == (MemberState.SUSPECT, 3)
    assert [type(e) for e in out.events] == [MemberSuspect]


def test_alive_at_the_same_incarnation_does_not_clear_a_suspicion():
    node = node_with_peer(peer_inc=3)
    node.receive(1.0, OTHER, gossip(fact("peer", 3, MemberState.SUSPECT, by="other")))
    node.receive(1.1, OTHER, gossip(fact("peer", 3, MemberState.ALIVE, PEER)))
    assert state_of(node, "peer") == (MemberState.SUSPECT, 3)


@pytest.mark.parametrize("before", [MemberState.ALIVE, MemberState.SUSPECT])
def test_dead_overrides_alive_and_suspect_at_the_same_incarnation(before):
    node = node_with_peer(peer_inc=2)
    if before is MemberState.SUSPECT:
        node.receive(1.0, OTHER, gossip(fact("peer", 2, MemberState.SUSPECT, by="other")))
    out = node.receive(1.1, OTHER, gossip(fact("peer", 2, MemberState.DEAD, by="other")))
    assert state_of(node, "peer") == (MemberState.DEAD, 2)
    assert [type(e) for e in out.events] == [MemberDead]


@pytest.mark.parametrize("state", [MemberState.SUSPECT, MemberState.DEAD, MemberState.ALIVE])
def test_claims_about_an_older_incarnation_are_ignored(state):
    node = node_with_peer(peer_inc=5)
    out = node.receive(1.0, OTHER, gossip(fact("peer", 4, state, PEER, by="other")))
    assert state_of(node, "peer") == (MemberState.ALIVE, 5)
    assert out.events == []


def test_dead_member_comes_back_only_with_a_higher_incarnation():
    node = node_with_peer(peer_inc=2)
    node.receive(1.0, OTHER, gossip(fact("peer", 2, MemberState.DEAD, by="other")))
    node.receive(1.1, OTHER, gossip(fact("peer", 2, MemberState.ALIVE, PEER)))
    assert state_of(node, "peer") == (MemberState.DEAD, 2)
    out = node.receive(1.2, OTHER, gossip(fact("peer", 3, MemberState.ALIVE, PEER)))
    assert state_of(node, "peer") == (MemberState.ALIVE, 3)
    assert [type(e) for e in out.events] == [MemberAlive]


def test_left_is_final_at_its_incarnation_and_outranks_dead():
    node = node_with_peer(peer_inc=1)
    node.receive(1.0, OTHER, gossip(fact("peer", 1, MemberState.DEAD, by="other")))
    node.receive(1.1, OTHER, gossip(fact("peer", 1, MemberState.LEFT, PEER)))
    assert state_of(node, "peer") == (MemberState.LEFT, 1)
    node.receive(1.2, OTHER, gossip(fact("peer", 1, MemberState.DEAD, by="other")))
    node.receive(1.3, OTHER, gossip(fact("peer", 1, MemberState.SUSPECT, by="other")))
    assert state_of(node, "peer") == (MemberState.LEFT, 1)


@pytest.mark.parametrize("state", [MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT])
def test_a_node_refutes_any_accusation_with_a_higher_incarnation(state):
    node = node_with_peer()
    node.receive(1.0, OTHER, gossip(fact("me", 7, state, ME, by="other")))
    assert node.incarnation == 8
    assert state_of(node, "me") == (MemberState.ALIVE, 8)
    out = node.tick(1.0 + CONFIG.gossip_interval)
    refutations = [
        f for _, msg in out.send for f in msg.get("g", ()) if f["n"] == "me" and f["s"] == 0
    ]
    assert refutations and all(f["i"] == 8 for f in refutations)


def test_a_restarted_node_rises_above_the_incarnation_its_old_self_reached():
    node = node_with_peer()
    node.receive(1.0, OTHER, gossip(fact("me", 12, MemberState.ALIVE, ME)))
    assert node.incarnation == 13


def test_a_node_that_left_does_not_refute():
    node = node_with_peer()
    node.leave(1.0)
    node.receive(1.1, OTHER, gossip(fact("me", 0, MemberState.DEAD, by="other")))
    assert state_of(node, "me") == (MemberState.LEFT, 0)


def test_a_message_from_an_address_proves_no_other_id_lives_there():
    node = node_with_peer()
    out = node.receive(1.0, PEER, {"t": "swim.ping", "f": "peer2", "s": 1, "n": "me"})
    assert state_of(node, "peer") == (MemberState.DEAD, 0)
    assert [type(e) for e in out.events] == [MemberDead]


def test_a_member_held_dead_that_speaks_is_told_so_it_can_refute():
    node = node_with_peer(peer_inc=4)
    node.receive(1.0, OTHER, gossip(fact("peer", 4, MemberState.DEAD, by="other")))
    out = node.receive(2.0, PEER, {"t": "swim.ping", "f": "peer", "s": 9, "n": "me"})
    told = [msg for addr, msg in out.send if addr == PEER and msg["t"] == "swim.gossip"]
    assert told and told[0]["g"][0] == {"n": "peer", "i": 4, "s": 2, "b": "me"}


def test_ping_is_answered_with_an_ack_of_the_same_sequence_number():
    node = node_with_peer()
    out = node.receive(1.0, PEER, {"t": "swim.ping", "f": "peer", "s": 41, "n": "me"})
    acks = [(addr, msg) for addr, msg in out.send if msg["t"] == "swim.ack"]
    assert len(acks) == 1 and acks[0][0] == PEER
    assert acks[0][1]["s"] == 41 and acks[0][1]["f"] == "me" and "n" not in acks[0][1]


def test_ping_req_is_relayed_and_the_ack_forwarded_to_the_origin():
    node = node_with_peer()
    req = {"t": "swim.ping_req", "f": "other", "s": 77, "n": "peer", "a": list(PEER), "k": True}
    out = node.receive(1.0, OTHER, req)
    (addr, ping) = next((a, m) for a, m in out.send if m["t"] == "swim.ping")
    assert addr == PEER and ping["n"] == "peer"
    out = node.receive(1.01, PEER, {"t": "swim.ack", "f": "peer", "s": ping["s"]})
    forwarded = [(a, m) for a, m in out.send if m["t"] == "swim.ack"]
    assert len(forwarded) == 1 and forwarded[0][0] == OTHER
    assert (forwarded[0][1]["f"], forwarded[0][1]["s"], forwarded[0][1]["n"]) == ("me", 77, "peer")


def test_ping_req_without_an_answer_gets_a_nack_before_the_probe_timeout():
    node = node_with_peer()
    req = {"t": "swim.ping_req", "f": "other", "s": 77, "n": "peer", "a": list(PEER), "k": True}
    node.receive(1.0, OTHER, req)
    deadline = node.next_deadline()
    assert deadline is not None and deadline < 1.0 + CONFIG.probe_timeout
    out = node.tick(1.0 + CONFIG.probe_timeout)
    nacks = [(a, m) for a, m in out.send if m["t"] == "swim.nack"]
    assert len(nacks) == 1 and nacks[0][0] == OTHER and nacks[0][1]["s"] == 77


def test_next_deadline_lets_a_runtime_sleep_until_work_is_due():
    node = node_with_peer()
    pings, previous = [], -1.0
    while not pings:
        deadline = node.next_deadline()
        assert deadline is not None and deadline > previous
        previous = deadline
        out = node.tick(deadline)
        pings = [m for _, m in out.send if m["t"] == "swim.ping"]
    assert previous <= CONFIG.probe_interval and len(pings) == 1


def test_invalid_identity_or_meta_is_refused_at_construction():
    with pytest.raises(ValueError):
        Membership("", ME, CONFIG, random.Random(1))
    with pytest.raises(ValueError):
        Membership("me", ("localhost", 7000), CONFIG, random.Random(1))
    with pytest.raises(ValueError):
        Membership("me", ME, CONFIG, random.Random(1), meta={"k": 1.5})


def test_a_node_that_left_cannot_join_again():
    node = node_with_peer()
    node.leave(1.0)
    with pytest.raises(RuntimeError):
        node.join(2.0, [PEER])
