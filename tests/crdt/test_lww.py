"""LWW register: the maximum of (timestamp, node id, payload bytes) wins on every replica."""

from __future__ import annotations

import random

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import Entry, LWWRegister, encode_entry

from .strategies import lww_registers


def documented_order(r: LWWRegister) -> tuple[int, str, bytes]:
    payload = [r.deleted, r.value, r.meta, r.vector, r.expires_at]
    return (r.ts, r.node, msgpack.packb(payload))


@settings(max_examples=300, deadline=None)
@given(st.lists(lww_registers, min_size=1, max_size=6), st.randoms())
def test_any_join_order_picks_the_maximum_of_timestamp_node_and_payload(
    writes: list[LWWRegister], rnd: random.Random
) -> None:
    winner = max(writes, key=documented_order)
    shuffled = list(writes)
    rnd.shuffle(shuffled)
    result = shuffled[0]
    for w in shuffled[1:]:
        result = w.join(result) if rnd.random() < 0.5 else result.join(w)
    assert documented_order(result) == documented_order(winner)
    assert encode_entry(Entry(reg=result)) == encode_entry(Entry(reg=winner))


def test_equal_timestamps_resolve_by_node_id() -> None:
    a, b = LWWRegister(5, "a", "from a"), LWWRegister(5, "b", "from b")
    assert a.join(b).value == b.join(a).value == "from b"


def test_equal_timestamp_and_node_resolve_by_payload_bytes() -> None:
    # Only a node that lost its data and reused its clock can do this; the
    # replicas must still agree. 1, 1.0 and True are equal in Python, not on the wire.
    writes = [LWWRegister(5, "a", v) for v in (1, 1.0, True, "1")]
    best = max(writes, key=documented_order)
    for x in writes:
        for y in writes:
            assert documented_order(x.join(y)) == documented_order(y.join(x))
        assert documented_order(best.join(x)) == documented_order(x.join(best))
        assert documented_order(x.join(best)) == documented_order(best)


def test_a_tombstone_beats_an_earlier_write_and_loses_to_a_later_one() -> None:
    write = LWWRegister(5, "a", "v")
    assert LWWRegister.tombstone(6, "a").join(write).deleted
    assert not LWWRegister.tombstone(4, "b").join(write).deleted
    assert LWWRegister.tombstone(5, "a").join(write).deleted


def test_visible_until_it_expires_and_never_once_deleted() -> None:
    r = LWWRegister(5, "a", "v", expires_at=100)
    assert r.visible(99)
    assert not r.visible(100)
    assert not LWWRegister.tombstone(5, "a").visible(0)
    assert LWWRegister(5, "a", "v").visible(10**12)
