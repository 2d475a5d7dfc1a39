"""Datagram packing: the size budget always holds, nothing is lost, and decoding is strict."""

from __future__ import annotations

import os
from collections import Counter

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.errors import DecodeError
from swarmnode.transport import (
    Keyring,
    encode_message,
    envelope_overhead,
    pack_messages,
    seal_envelope,
    unpack_datagram,
)

RING = Keyring([os.urandom(32)])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
messages = st.builds(
    lambda t, body, blob: {"t": t, "body": body, "blob": blob},
    st.sampled_from(["ping", "ack", "delta", "digest"]),
    values,
    st.binary(max_size=3000),
)


def canonical(message) -> bytes:
    return msgpack.packb(message)


@settings(max_examples=120, deadline=None)
@given(st.lists(messages, max_size=40), st.integers(min_value=128, max_value=3000))
def test_sealed_datagrams_never_exceed_max_datagram_and_nothing_is_lost(batch, max_datagram):
    budget = max_datagram - envelope_overhead(RING)
    packing = pack_messages(batch, budget)
    for payload in packing.datagrams:
        assert len(seal_envelope(payload, RING)) <= max_datagram
    for payload in packing.streamed:
        assert len(seal_envelope(payload, RING)) > max_datagram
    out = [m for p in packing.datagrams + packing.streamed for m in unpack_datagram(p)]
    assert Counter(map(canonical, out)) == Counter(map(canonical, batch))


@settings(max_examples=50, deadline=None)
@given(st.lists(messages, min_size=1, max_size=40))
def test_only_messages_too_big_alone_are_streamed(batch):
    budget = 1400 - envelope_overhead(RING)
    packing = pack_messages(batch, budget)
    too_big = [m for m in batch if 1 + len(encode_message(m)) > budget]
    assert Counter(canonical(unpack_datagram(p)[0]) for p in packing.streamed) == Counter(
        map(canonical, too_big)
    )


def first_fit(encoded: list[bytes], budget: int) -> list[list[bytes]]:
    """The packing the docstring promises, the slow way: each message in the first
    payload with room for it (array header included), else in a new one."""
    bins: list[list[bytes]] = []
    for e in encoded:
        for b in bins:
            if (1 if len(b) + 1 < 16 else 3) + sum(map(len, b)) + len(e) <= budget:
                b.append(e)
                break
        else:
            bins.append([e])
    return bins


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(0, 300), st.integers(500, 1300)).map(
            lambda n: {"t": "d", "b": b"x" * n}
        ),
        max_size=60,
    ),
    st.integers(min_value=64, max_value=1400),
)
def test_packing_is_first_fit_whatever_the_mix_of_sizes(batch, budget):
    # Mostly near-full messages with small ones between: the skipped searches of a round
    # of large gossip messages must still put each small one in the first payload with room.
    fits = [encode_message(m) for m in batch if 1 + len(encode_message(m)) <= budget]
    expected = [[unpack_datagram(b"\x91" + e)[0] for e in b] for b in first_fit(fits, budget)]
    got = [unpack_datagram(p) for p in pack_messages(batch, budget).datagrams]
    assert got == expected


def test_small_messages_share_datagrams():
    batch = [{"t": "ping", "seq": i} for i in range(200)]
    packing = pack_messages(batch, 1400 - envelope_overhead(RING))
    assert len(packing.datagrams) <= 3
    assert [m for p in packing.datagrams for m in unpack_datagram(p)] == batch


def test_a_one_mebibyte_message_is_reported_for_the_stream():
    big = {"t": "delta", "value": os.urandom(1 << 20)}
    packing = pack_messages([{"t": "ping"}, big], 1367)
    assert packing.streamed and unpack_datagram(packing.streamed[0]) == [big]
    assert unpack_datagram(packing.datagrams[0]) == [{"t": "ping"}]


def test_more_than_fifteen_messages_use_a_longer_array_header():
    batch = [{"t": "x"}] * 16
    (payload,) = pack_messages(batch, 1000).datagrams
    assert unpack_datagram(payload) == batch


@pytest.mark.parametrize(
    "bad",
    [
        {"no_t": 1},
        {"t": 5},
        ["t", "ping"],
        "ping",
        {"t": "x", "nested": {1: "int key"}},
        {"t": "x", "value": {1, 2}},
        {"t": "x", "ext": msgpack.ExtType(1, b"x")},
    ],
)
def test_messages_receivers_would_refuse_are_refused_at_the_sender(bad):
    with pytest.raises(ValueError):
        pack_messages([bad], 1400)


def packb(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        packb([]),
        packb({"t": "ping"}),
        packb([{"t": 1}]),
        packb([{"type": "ping"}]),
        packb([["t", "ping"]]),
        packb([{"t": "ping"}, 3]),
        packb([{"t": "ping"}]) + b"\x00",
        packb([{"t": "ping", "v": "x" * 40}])[:-5],
        b"\x91\x81\xa1t\xa2\xff\xfe",
        b"\x91\x81\x01\xa1x",
        b"\x91" * 5000,
        b"\xdd\xff\xff\xff\xff",
        b"\x91\x82\xa1t\xa1x\xa1e\xd6\x01\x00\x00\x00\x00",
        b"\x91\x82\xa1t\xa1x\xa1e\xd6\xff\x00\x00\x00\x00",
        b"\x91\x81\xa1t\xdb\xff\xff\xff\xff",
        b"\xc1",
    ],
    ids=[
        "empty",
        "no-messages",
        "bare-map",
        "int-t",
        "missing-t",
        "list-message",
        "non-map-message",
        "trailing-byte",
        "truncated",
        "bad-utf8",
        "int-map-key",
        "deep-nesting",
        "huge-array-claim",
        "ext-type",
        "timestamp-ext",
        "huge-str-claim",
        "reserved-byte",
    ],
)
def test_malformed_payloads_are_decode_errors(payload):
    with pytest.raises(DecodeError):
        unpack_datagram(payload)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_decode_error(payload):
    try:
        decoded = unpack_datagram(payload)
    except DecodeError:
        return
    assert all(isinstance(m, dict) and isinstance(m["t"], str) for m in decoded)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(messages, min_size=1, max_size=5),
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "insert", "delete"]),
            st.integers(0, 10**6),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_valid_payloads_only_ever_raise_decode_error(batch, mutations):
    (payload, *_) = pack_messages(batch, 60000).datagrams
    data = bytearray(payload)
    for kind, position, byte in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= byte or 1
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data.insert(at, byte)
        elif kind == "delete" and at < len(data):
            del data[at]
    try:
        decoded = unpack_datagram(bytes(data))
    except DecodeError:
        return
    assert all(isinstance(m, dict) and isinstance(m["t"], str) for m in decoded)


@pytest.mark.parametrize(("spare", "expected_sizes"), [(3, [16]), (2, [15, 1])])
def test_array_header_growth_at_sixteen_messages_is_budgeted(spare, expected_sizes):
    message = {"t": "x", "pad": "y" * 20}
    size = len(encode_message(message))
    packing = pack_messages([message] * 16, 16 * size + spare)
    assert [len(unpack_datagram(p)) for p in packing.datagrams] == expected_sizes
    assert all(len(p) <= 16 * size + spare for p in packing.datagrams)
