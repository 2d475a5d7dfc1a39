"""Malformed anti-entropy messages raise DecodeError and nothing else, and break nothing.

Each example replays a small deterministic round up to the n-th message of one
type, damages that message (a field replaced, removed or grown) and hands it to
the node that was about to receive it.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmnode.errors import DecodeError
from swarmnode.replication.antientropy import AntiEntropy, AntiEntropyConfig, ApplyStates
from swarmnode.replication.antientropy_memory import MemoryEntrySource
from swarmnode.sansio import Address, Message

A: Address = ("127.0.0.1", 7001)
B: Address = ("127.0.0.2", 7001)
SHAPE = {"fanout": 4, "depth": 3}
CONFIG = AntiEntropyConfig(max_message_bytes=1024, tree_fanout=4, tree_depth=3)
KINDS = ["ae.roots", "ae.query", "ae.answer", "ae.xfer", "ae.states", "ae.refuse"]


def stores() -> tuple[MemoryEntrySource, MemoryEntrySource]:
    data = {"ns": [(f"k{i}", b"v%d" % i) for i in range(200)]}
    a = MemoryEntrySource.build(max, data, **SHAPE)
    b = a.clone()
    for i in range(0, 200, 9):
        b.put("ns", f"k{i}", b"changed")
    for i in range(100):
        b.put("only-b", f"b{i}", b"x" * 20)
    a.put("only-a", "a", b"y")
    return a, b


def run_until(kind: str, nth: int) -> tuple[AntiEntropy, Address, Message] | int:
    """The receiver, sender and message of the nth message of `kind`, or how many there are."""
    store_a, store_b = stores()
    config_b = AntiEntropyConfig(tree_fanout=4, tree_depth=2) if kind == "ae.refuse" else CONFIG
    nodes = {
        A: (AntiEntropy("a", store_a, CONFIG, random.Random(1)), store_a),
        B: (AntiEntropy("b", store_b, config_b, random.Random(2)), store_b),
    }
    _, out = nodes[A][0].start_round(0.0, B)
    wire = deque((A, B, msg) for _, msg in out.send)
    seen = 0
    while wire:
        src, dst, msg = wire.popleft()
        msg = msgpack.unpackb(msgpack.packb(msg, use_bin_type=True), raw=False)
        node, store = nodes[dst]
        if msg["t"] == kind:
            if seen == nth:
                return node, src, msg
            seen += 1
        out = node.receive(0.1, src, msg)
        for event in out.events:
            if isinstance(event, ApplyStates):
                store.apply(event.ns, event.states)
        wire.extend((dst, to, reply) for to, reply in out.send)
    return seen


OCCURRENCES = {kind: run_until(kind, 10**9) for kind in KINDS}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.sampled_from([0, 1, 2, 3, 4, 63, 2**32])
    | st.floats(allow_nan=True)
    | st.text(max_size=4)
    | st.sampled_from(["\ud800", "ns", "k1", "only-b"])
    | st.binary(max_size=20)
    | st.sampled_from([bytes(16), bytes(64)])
)
values = scalars | st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=6,
)


def paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*here, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths(inner, (*here, index))
    return found


def damage(msg: Message, path: tuple[Any, ...], how: str, value: Any) -> Any:
    if not path:
        return value
    parent: Any = msg
    for step in path[:-1]:
        parent = parent[step]
    if how == "remove":
        del parent[path[-1]]
    elif how == "grow" and isinstance(parent[path[-1]], list):
        parent[path[-1]].append(value)
    else:
        parent[path[-1]] = value
    return msg


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_damaged_messages_raise_only_decode_error_and_leave_the_node_working(data: Any) -> None:
    kind = data.draw(st.sampled_from(KINDS))
    nth = data.draw(st.integers(min_value=0, max_value=OCCURRENCES[kind] - 1))
    found = run_until(kind, nth)
    assert not isinstance(found, int)
    node, sender, msg = found
    original = msgpack.unpackb(msgpack.packb(msg, use_bin_type=True), raw=False)
    path = data.draw(st.sampled_from(paths(msg)))
    how = data.draw(st.sampled_from(["replace", "remove", "grow"]))
    damaged = damage(msg, path, how, data.draw(values))
    try:
        node.receive(0.2, sender, damaged)
    except DecodeError:
        node.receive(0.2, sender, original)
    node.tick(100.0)


@pytest.mark.parametrize(
    "msg",
    [
        None,
        [],
        {},
        {"t": ["ae.roots"]},
        {"t": "ae.nonsense", "r": 1, "q": 0},
        {"t": "ae.roots", "r": True, "q": 0, "f": 4, "d": 3, "all": True, "items": []},
        {"t": "ae.roots", "r": 1, "q": 0, "f": 4, "d": 3, "all": 1, "items": []},
        {"t": "ae.query", "r": 1, "q": 0, "items": [["ns", 4, 0, bytes(16), 0, None]]},
        {"t": "ae.query", "r": 1, "q": 0, "items": [["ns", 1, 4, bytes(16), 0, None]]},
        {"t": "ae.query", "r": 1, "q": 0, "items": [["ns", 1, 0, bytes(15), 0, None]]},
        {"t": "ae.query", "r": 1, "q": 0, "items": [["ns", 1, 0, bytes(16), -1, None]]},
        {"t": "ae.query", "r": 1, "q": 0, "items": [["ns", 1, 0, bytes(16), 0, 5]]},
        {"t": "ae.xfer", "r": 1, "q": 0, "ns": "ns", "s": [["\ud800", b"x"]], "w": []},
        {"t": "ae.xfer", "r": 1, "q": 0, "ns": "ns", "s": [["k", "not bytes"]], "w": []},
        {"t": "ae.xfer", "r": 1, "q": 0, "ns": "ns", "s": [], "w": [7]},
        {"t": "ae.refuse", "r": 1, "q": 0},
    ],
)
def test_messages_of_the_wrong_shape_are_decode_errors(msg: Any) -> None:
    node = AntiEntropy("b", stores()[1], CONFIG, random.Random(2))
    with pytest.raises(DecodeError):
        node.receive(0.0, A, msg)
