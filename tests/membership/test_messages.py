"""Untrusted SWIM messages: anything malformed raises DecodeError and changes nothing."""

from __future__ import annotations

import dataclasses
import random

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmnode.errors import DecodeError
from swarmnode.membership import Membership, MembershipConfig
from swarmnode.membership.compat import ClusterSettings
from swarmnode.membership.messages import Fact, decode, fact
from swarmnode.membership.state import MemberState

from .simnet import SimNet

ME = ("127.0.0.1", 7000)
PEER = ("127.0.0.2", 7000)
SETTINGS = list(ClusterSettings().to_wire())
GOOD_FACT = {"n": "peer", "i": 1, "s": 0, "a": ["127.0.0.2", 7000], "m": {"v": 1}, "c": SETTINGS}

VALID = [
    {"t": "swim.ping", "f": "peer", "s": 1, "n": "me", "g": [GOOD_FACT]},
    {"t": "swim.ack", "f": "peer", "s": 1},
    {"t": "swim.ack", "f": "relay", "s": 1, "n": "peer"},
    {"t": "swim.ping_req", "f": "peer", "s": 2, "n": "x", "a": ["::1", 9], "k": True},
    {"t": "swim.nack", "f": "peer", "s": 2},
    {"t": "swim.gossip", "f": "peer", "g": [{"n": "x", "i": 0, "s": 2, "b": "peer"}]},
    {
        "t": "swim.pp",
        "f": "peer",
        "r": True,
        "ms": [GOOD_FACT, {"n": "y", "i": 0, "s": 3, "a": ["127.0.0.3", 1], "d": 5}],
    },
]

MALFORMED = [
    None,
    [],
    b"swim.ping",
    {},
    {"t": "swim.ping"},
    {"t": "swim.unknown", "f": "peer"},
    {"t": "raft.vote", "f": "peer"},
    {"t": "swim.ping", "f": "", "s": 1, "n": "me"},
    {"t": "swim.ping", "f": "x" * 65, "s": 1, "n": "me"},
    {"t": "swim.ping", "f": "é" * 33, "s": 1, "n": "me"},
    {"t": "swim.ping", "f": "peer", "s": 1, "n": "\udc80"},
    {"t": "swim.ping", "f": 7, "s": 1, "n": "me"},
    {"t": "swim.ping", "f": "peer", "s": -1, "n": "me"},
    {"t": "swim.ping", "f": "peer", "s": True, "n": "me"},
    {"t": "swim.ping", "f": "peer", "s": 2**63, "n": "me"},
    {"t": "swim.ping", "f": "peer", "s": 1.0, "n": "me"},
    {"t": "swim.ping", "f": "peer", "s": 1},
    {"t": "swim.ping", "f": "peer", "s": 1, "n": "me", "g": {"n": "x"}},
    {"t": "swim.ping", "f": "peer", "s": 1, "n": "me", "g": [GOOD_FACT] * 1025},
    {"t": "swim.ping_req", "f": "peer", "s": 2, "n": "x", "a": ["host.example", 9]},
    {"t": "swim.ping_req", "f": "peer", "s": 2, "n": "x", "a": ["127.0.0.1", 0]},
    {"t": "swim.ping_req", "f": "peer", "s": 2, "n": "x", "a": ["127.0.0.1", 65536]},
    {"t": "swim.ping_req", "f": "peer", "s": 2, "n": "x", "a": ["127.0.0.1"]},
    {"t": "swim.ping_req", "f": "peer", "s": 2, "n": "x", "a": "127.0.0.1:9"},
    {"t": "swim.ping_req", "f": "peer", "s": 2, "n": "x", "a": ["127.0.0.1", 9], "k": 1},
    {"t": "swim.pp", "f": "peer", "r": 1, "ms": []},
    {"t": "swim.pp", "f": "peer", "r": False},
    {"t": "swim.pp", "f": "peer", "r": False, "ms": [{"n": "x", "i": 0, "s": 2}]},
]

BAD_FACTS = [
    {**GOOD_FACT, "s": 4},
    {**GOOD_FACT, "s": -1},
    {**GOOD_FACT, "s": False},
    {**GOOD_FACT, "i": -1},
    {**GOOD_FACT, "i": 2**63},
    {**GOOD_FACT, "i": "1"},
    {**GOOD_FACT, "n": None},
    {"n": "x", "i": 0, "s": 0},
    {**GOOD_FACT, "a": ["127.0.0.1", "7000"]},
    {**GOOD_FACT, "m": []},
    {**GOOD_FACT, "m": {"k": 1.5}},
    {**GOOD_FACT, "m": {"k": None}},
    {**GOOD_FACT, "m": {"": "v"}},
    {**GOOD_FACT, "m": {"k": "v" * 257}},
    {**GOOD_FACT, "m": {f"k{i}": i for i in range(17)}},
    {**GOOD_FACT, "m": {"k": 2**63}},
    {**GOOD_FACT, "m": {"k": "\ud800"}},
    {**GOOD_FACT, "s": 2, "m": {"v": 1}},
    {**GOOD_FACT, "b": 3},
    {**GOOD_FACT, "d": -1.0},
    {**GOOD_FACT, "d": float("nan")},
    {**GOOD_FACT, "d": float("inf")},
    {**GOOD_FACT, "d": "1"},
    {**GOOD_FACT, "c": []},
    {**GOOD_FACT, "c": 2},
    {**GOOD_FACT, "c": [2, -1]},
    {**GOOD_FACT, "c": [2, "16"]},
    {**GOOD_FACT, "c": [2, True]},
    {**GOOD_FACT, "c": [2, 2**63]},
    {**GOOD_FACT, "c": list(range(17))},
    {"n": "x", "i": 0, "s": 2, "c": SETTINGS},
    "fact",
]


def fresh_node() -> Membership:
    node = Membership("me", ME, MembershipConfig.local(), random.Random(3))
    node.tick(0.0)
    return node


def snapshot(node: Membership):
    return node.members(), node.incarnation, node.next_deadline()


@pytest.mark.parametrize("msg", VALID, ids=lambda m: m["t"])
def test_well_formed_messages_decode_and_are_handled(msg):
    decode(msg)
    fresh_node().receive(1.0, PEER, msg)


@pytest.mark.parametrize("msg", MALFORMED)
def test_malformed_messages_raise_decode_error_and_change_nothing(msg):
    node = fresh_node()
    node.receive(0.5, PEER, VALID[0])
    before = snapshot(node)
    with pytest.raises(DecodeError):
        node.receive(1.0, PEER, msg)
    assert snapshot(node) == before


@pytest.mark.parametrize("bad", BAD_FACTS)
def test_a_single_bad_fact_rejects_the_whole_message(bad):
    node = fresh_node()
    msg = {"t": "swim.gossip", "f": "peer", "g": [GOOD_FACT, bad]}
    with pytest.raises(DecodeError):
        node.receive(1.0, PEER, msg)
    assert [m.node_id for m in node.members()] == ["me"]


def test_every_message_a_cluster_sends_is_valid_msgpack_that_decodes():
    net = SimNet(5)
    net.start_cluster(6)
    net.run_for(3)
    net.leave(next(iter(net.nodes)))
    net.run_for(3)
    assert set(net.counters.by_type) >= {"swim.ping", "swim.ack", "swim.gossip", "swim.pp"}
    assert net.counters.delivered > 0


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["t", "f", "s", "n", "a", "k", "g", "r", "ms", "i", "m", "b", "d"]
TYPES = ["swim.ping", "swim.ack", "swim.ping_req", "swim.nack", "swim.gossip", "swim.pp", "x"]
fact_like = st.fixed_dictionaries(
    {},
    optional={
        "n": st.sampled_from(["me", "peer", "x"]) | msgpack_values,
        "i": st.integers(min_value=-2, max_value=2**64) | msgpack_values,
        "s": st.integers(min_value=-1, max_value=5),
        "a": st.sampled_from([["127.0.0.2", 7000], ["127.0.0.1", 7000], ["::1", 1]])
        | msgpack_values,
        "m": msgpack_values,
        "b": st.sampled_from(["peer", "x"]) | msgpack_values,
        "d": st.floats() | st.integers(),
    },
)
message_like = st.builds(
    lambda kind, fields, facts, state: {"t": kind, **fields, "g": facts, "ms": state},
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(KEYS), msgpack_values | st.sampled_from(["peer", 1, True])),
    st.lists(fact_like, max_size=4),
    st.lists(fact_like, max_size=4),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=message_like | msgpack_values)
def test_random_input_raises_only_decode_error(msg):
    node = fresh_node()
    try:
        node.receive(1.0, PEER, msg)
    except DecodeError:
        return
    node.assert_invariants()
    for _, sent in node.tick(5.0).send:
        msgpack.packb(sent)


valid_fact = st.fixed_dictionaries(
    {
        "n": st.sampled_from(["me", "peer", "x", "y"]),
        "i": st.integers(min_value=0, max_value=4),
        "s": st.integers(min_value=0, max_value=3),
        "a": st.sampled_from([["127.0.0.1", 7000], ["127.0.0.2", 7000], ["127.0.0.3", 1]]),
    },
    optional={"b": st.sampled_from(["peer", "x", "y"]), "d": st.floats(0, 1e6)},
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["gossip", "pp"]), st.lists(valid_fact, max_size=5)),
        max_size=12,
    )
)
def test_any_sequence_of_valid_facts_keeps_the_member_table_consistent(batches):
    node = fresh_node()
    seen: dict[str, int] = {}
    now = 0.0
    for kind, batch in batches:
        now += 0.3
        if kind == "gossip":
            msg = {"t": "swim.gossip", "f": "peer", "g": batch}
        else:
            msg = {"t": "swim.pp", "f": "peer", "r": True, "ms": batch}
        node.receive(now, PEER, msg)
        node.tick(now)
        node.assert_invariants()
        members = {info.node_id: info.incarnation for info in node.members()}
        for node_id, incarnation in members.items():
            assert incarnation >= seen.get(node_id, 0)
        seen = members  # a member forgotten after dead_retention may start over


def test_alive_facts_carry_the_settings_and_version_1_facts_still_decode():
    v2 = fact(GOOD_FACT)
    assert v2.settings == ClusterSettings().to_wire()
    v1 = fact({k: v for k, v in GOOD_FACT.items() if k != "c"})
    assert v1.settings is None
    assert dataclasses.replace(v2, settings=None) == v1


def test_version_2_facts_keep_every_version_1_field_as_it_was():
    """A version 1 node reads the fields it knows and ignores "c"."""
    mine = Fact("me", 3, MemberState.ALIVE, ME, {"role": "x"}, settings=(2, 16, 4, 1, 1)).to_wire()
    old = Fact("me", 3, MemberState.ALIVE, ME, {"role": "x"}).to_wire()
    assert {k: v for k, v in mine.items() if k != "c"} == old
    assert mine["c"] == [2, 16, 4, 1, 1]


def test_a_node_announces_its_settings_in_its_own_alive_fact():
    node = fresh_node()
    out = node.join(1.0, [PEER])
    [(_, msg)] = out.send
    [own] = [m for m in msg["ms"] if m["n"] == "me"]
    assert own["c"] == SETTINGS
