"""Stream frames and hellos: lengths are capped and hellos declare a valid gossip address."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.errors import DecodeError
from swarmnode.transport.framing import (
    FrameTooLarge,
    decode_hello,
    encode_hello,
    frame,
    frame_length,
    parse_address,
)


@pytest.mark.parametrize("address", [("127.0.0.1", 7946), ("::1", 1), ("0.0.0.0", 65535)])
def test_hello_round_trip(address):
    assert decode_hello(encode_hello(address)) == address


def test_frame_length_reads_back_what_frame_wrote():
    framed = frame(b"x" * 300)
    assert frame_length(framed[:4], limit=300) == 300


def test_frame_over_the_limit_is_too_large():
    with pytest.raises(FrameTooLarge):
        frame_length(frame(b"x" * 301)[:4], limit=300)


@pytest.mark.parametrize("header", [b"\x00\x00\x00\x00", b"\x00\x01", b""])
def test_empty_or_short_frame_headers_are_decode_errors(header):
    with pytest.raises(DecodeError):
        frame_length(header, limit=1000)


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb(["swarmnode-stream", 2, "127.0.0.1", 1]),
        msgpack.packb(["other", 1, "127.0.0.1", 1]),
        msgpack.packb(["swarmnode-stream", 1, "localhost", 1]),
        msgpack.packb(["swarmnode-stream", 1, "127.0.0.1", 0]),
        msgpack.packb(["swarmnode-stream", 1, "127.0.0.1", 70000]),
        msgpack.packb(["swarmnode-stream", 1, "127.0.0.1", True]),
        msgpack.packb(["swarmnode-stream", 1, "127.0.0.1"]),
        msgpack.packb({"t": "ping"}),
        b"\xff",
    ],
)
def test_invalid_hellos_are_decode_errors(payload):
    with pytest.raises(DecodeError):
        decode_hello(payload)


@given(st.binary(max_size=100))
def test_random_hello_bytes_only_ever_raise_decode_error(payload):
    try:
        host, port = decode_hello(payload)
    except DecodeError:
        return
    assert parse_address((host, port)) == (host, port)


def test_addresses_are_canonicalised():
    assert parse_address(["0:0:0:0:0:0:0:1", 80]) == ("::1", 80)
