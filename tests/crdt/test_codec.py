"""Codec: lossless, canonical, and for hostile bytes an Entry or DecodeError, nothing else."""

from __future__ import annotations

import math
import struct
import tracemalloc

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import (
    CausalContext,
    Entry,
    LWWRegister,
    MVRegister,
    ORSet,
    PNCounter,
    Version,
    decode_entry,
    encode_entry,
    make_ts,
)
from swarmnode.crdt.codec import FORMAT_VERSION, MAX_NODE_ID
from swarmnode.crdt.values import MAX_DEPTH, canonical
from swarmnode.errors import DecodeError
from swarmnode.membership.messages import MAX_NODE_ID_BYTES

from .histories import Cluster, histories
from .strategies import entries

fuzz = settings(max_examples=250, deadline=None)

# Headers that declare far more than any input holds: array32, map32, str32, bin32, array16.
HUGE = [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff"]
HUGE += [b"\xc6\xff\xff\xff\xff", b"\xdc\xff\xff"]


def assert_round_trip(e: Entry) -> None:
    data = encode_entry(e)
    back = decode_entry(data)
    assert back == e
    assert encode_entry(back) == data


def assert_well_formed(e: Entry) -> None:
    """What every mutator maintains, so what the decoder must refuse to break."""
    regs = [e.reg] if e.reg else []
    versions = list(e.mv.versions.items()) if e.mv else []
    for dot, v in versions:
        assert dot in e.mv.cc
        assert v.ts <= e.ts
    assert all(r.ts <= e.ts for r in regs)
    if e.orset:
        for dots in e.orset.elems.values():
            assert all(d in e.orset.cc for d in dots)
    if e.counter:
        c = e.counter
        assert all(v <= c.p.get(k, 0) for k, v in c.fp.items())
        assert all(v <= c.n.get(k, 0) for k, v in c.fn.items())
    for value, meta, vector in [(r.value, r.meta, r.vector) for r in regs] + [
        (v.value, v.meta, v.vector) for _, v in versions
    ]:
        assert msgpack.packb(canonical(value)) == msgpack.packb(value)
        assert meta is None or isinstance(meta, dict)
        if vector is not None:
            assert all(math.isfinite(f) for (f,) in struct.iter_unpack("<f", vector))


def assert_decodes_or_refuses(data: bytes) -> None:
    try:
        e = decode_entry(data)
    except DecodeError:
        return
    assert_well_formed(e)
    again = decode_entry(encode_entry(e))
    assert again == e
    assert encode_entry(again) == encode_entry(e)
    # Whatever decodes can be merged and re-encoded without surprises.
    assert encode_entry(e.join(e)) == encode_entry(e.join(e).join(e))


@fuzz
@given(entries)
def test_every_state_survives_a_round_trip_byte_for_byte(e: Entry) -> None:
    assert_round_trip(e)


@settings(max_examples=60, deadline=None)
@given(histories("mixed"))
def test_every_delta_and_state_of_a_history_survives_a_round_trip(ops: list[tuple]) -> None:
    cluster = Cluster()
    for op in ops:
        cluster.run(op)
    for event in cluster.events:
        assert_round_trip(event.delta)
    for r in cluster.replicas:
        assert_round_trip(r.state)


def scrambled(e: Entry) -> Entry:
    """The same state rebuilt with every map filled in the opposite order."""

    def rev(d: dict) -> dict:
        return dict(reversed(list(d.items())))

    def cc(c: CausalContext) -> CausalContext:
        return CausalContext.of(list(c.dots())[::-1])

    return Entry(
        e.ts,
        reg=e.reg,
        mv=MVRegister(rev(e.mv.versions), cc(e.mv.cc)) if e.mv else None,
        counter=PNCounter(
            rev(e.counter.p),
            rev(e.counter.n),
            rev(e.counter.fp),
            rev(e.counter.fn),
            e.counter.expires_at,
            e.counter.expiry_ts,
        )
        if e.counter
        else None,
        orset=ORSet(rev(e.orset.elems), cc(e.orset.cc), e.orset.expires_at, e.orset.expiry_ts)
        if e.orset
        else None,
        agent=e.agent,
    )


@fuzz
@given(entries)
def test_equal_states_built_in_different_orders_encode_identically(e: Entry) -> None:
    other = scrambled(e)
    assert other == e
    assert encode_entry(other) == encode_entry(e)


def test_user_maps_written_in_different_orders_encode_identically() -> None:
    one = Entry().put_lww(1, "a", {"b": 1, "a": {"d": 2, "c": 3}}, meta={"y": 1, "x": 2})
    two = Entry().put_lww(1, "a", {"a": {"c": 3, "d": 2}, "b": 1}, meta={"x": 2, "y": 1})
    assert encode_entry(one) == encode_entry(two)
    assert one == two
    assert decode_entry(encode_entry(one)) == one


def test_writes_by_the_longest_node_id_membership_admits_round_trip() -> None:
    node_id = "n" * MAX_NODE_ID_BYTES
    ts = make_ts(1_780_000_000_000)
    actor = Entry().actor(node_id, ts)
    assert_round_trip(Entry().put_lww(ts, node_id, "v"))
    assert_round_trip(Entry().put_mv(ts, actor, Version("v", ts)))
    assert_round_trip(Entry().incr(ts, actor, 1, None, 0))
    assert_round_trip(Entry().sadd(ts, actor, ["x"], None, 0))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01", b"\x02\x95\x00\xc0\xc0\xc0\xc0", b"\x01\x95\x00\xc0\xc0\xc0\xc0\xc0"],
    ids=["empty", "version-only", "unknown-version", "trailing-bytes"],
)
def test_malformed_framing_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_entry(data)


def test_non_bytes_are_refused() -> None:
    with pytest.raises(DecodeError):
        decode_entry("not bytes")  # type: ignore[arg-type]


def reg_with(value_bytes: bytes) -> bytes:
    """An encoded entry whose register value is the given raw msgpack.

    [ts=1, [ts=1, node="a", deleted=False, <value>, meta, vector, expiry], mv, counter, set]
    """
    register = b"\x97\x01\xa1a\xc2" + value_bytes + b"\xc0\xc0\xc0"
    return bytes([FORMAT_VERSION]) + b"\x95\x01" + register + b"\xc0\xc0\xc0"


def test_the_register_fixture_is_a_valid_encoding() -> None:
    assert decode_entry(reg_with(b"\xa1v")) == Entry(1, reg=LWWRegister(1, "a", "v"))


def test_values_nest_up_to_the_documented_depth_and_no_further() -> None:
    assert decode_entry(reg_with(b"\x91" * MAX_DEPTH + b"\xc0")).reg.value is not None
    with pytest.raises(DecodeError):
        decode_entry(reg_with(b"\x91" * (MAX_DEPTH + 1) + b"\xc0"))


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    with pytest.raises(DecodeError):
        decode_entry(reg_with(b"\x91" * depth + b"\xc0"))
    with pytest.raises(DecodeError):
        decode_entry(reg_with(b"\x81\xa1k" * depth + b"\xc0"))


@pytest.mark.parametrize("header", HUGE, ids=lambda h: h.hex())
def test_huge_declared_lengths_are_refused_without_allocating_them(header: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            decode_entry(reg_with(header + b"\x00" * 16))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize(
    "counter",
    [
        [[], [], [["a", 1]], [], None],
        [[["a", 1]], [["a", 1]], [["a", 1]], [["a", 2]], None],
    ],
    ids=["floor-without-total", "floor-above-total"],
)
def test_a_counter_floor_above_its_total_is_refused(counter: list) -> None:
    with pytest.raises(DecodeError):
        decode_entry(bytes([FORMAT_VERSION]) + msgpack.packb([1, None, None, counter, None]))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_vector_with_nan_or_infinity_is_refused(bad: float) -> None:
    vector = struct.pack("<2f", 1.0, bad)
    reg = [1, "a", False, "v", None, vector, None]
    with pytest.raises(DecodeError):
        decode_entry(bytes([FORMAT_VERSION]) + msgpack.packb([1, reg, None, None, None]))


@pytest.mark.parametrize(
    "wire",
    [
        [1, [1, "", False, None, None, None, None], None, None, None],
        [1, [1, "n" * (MAX_NODE_ID + 1), False, None, None, None, None], None, None, None],
        [1, None, [[[], []], [["a", 1, "v", 1, None, None, None]]], None, None],
        [1, None, None, None, [[[], []], [["x", [["a", 1]]]], None]],
        [1, None, [[[["a", 0]], []], []], None, None],
        [-1, None, None, None, None],
        [1 << 63, None, None, None, None],
        [1, [2, "a", False, "v", None, None, None], None, None, None],
        [1, None, [[[["a", 1]], []], [["a", 1, "v", 2, None, None, None]]], None, None],
    ],
    ids=[
        "empty-node",
        "long-node",
        "mv-version-outside-context",
        "set-dot-outside-context",
        "zero-in-vector",
        "negative-ts",
        "ts-beyond-63-bits",
        "register-stamped-after-entry",
        "version-stamped-after-entry",
    ],
)
def test_states_no_mutator_produces_are_refused(wire: list) -> None:
    with pytest.raises(DecodeError):
        decode_entry(bytes([FORMAT_VERSION]) + msgpack.packb(wire))


@fuzz
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    assert_decodes_or_refuses(data)
    assert_decodes_or_refuses(bytes([FORMAT_VERSION]) + data)


@st.composite
def mutated_encodings(draw: st.DrawFn) -> bytes:
    data = bytearray(encode_entry(draw(entries)))
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "truncate", "splice", "insert", "nest", "huge"]))
        if how == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[pos:]
        elif how == "splice":
            other = encode_entry(draw(entries))
            data[pos:] = other[draw(st.integers(0, len(other) - 1)) :]
        elif how == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif how == "nest":
            opener = draw(st.sampled_from([b"\x91", b"\x81\xa1k"]))
            data[pos:pos] = opener * draw(st.sampled_from([MAX_DEPTH, 500, 50_000]))
        else:
            data[pos:pos] = draw(st.sampled_from(HUGE))
    return bytes(data)


@fuzz
@given(mutated_encodings())
def test_mutated_encodings_decode_or_raise_decode_error(data: bytes) -> None:
    assert_decodes_or_refuses(data)
