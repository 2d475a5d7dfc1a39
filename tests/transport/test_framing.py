"""Stream frames, challenges and hellos: lengths are capped, versions are checked by name,
and hellos declare a valid gossip address and the challenge they answer."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.errors import DecodeError
from swarmnode.transport import VersionError
from swarmnode.transport.framing import (
    CHALLENGE_PREAMBLE_BYTES,
    FrameTooLarge,
    decode_challenge,
    decode_hello,
    encode_challenge,
    encode_hello,
    frame,
    frame_context,
    frame_length,
    parse_address,
)

CHALLENGE = bytes(range(16))


@pytest.mark.parametrize("address", [("127.0.0.1", 7946), ("::1", 1), ("0.0.0.0", 65535)])
def test_hello_round_trip(address):
    assert decode_hello(encode_hello(address, CHALLENGE)) == (address, CHALLENGE)


def test_challenge_round_trip():
    preamble = encode_challenge(CHALLENGE)
    assert len(preamble) == CHALLENGE_PREAMBLE_BYTES
    assert decode_challenge(preamble) == CHALLENGE


def test_a_challenge_of_another_stream_version_is_refused_by_name():
    preamble = bytearray(encode_challenge(CHALLENGE))
    preamble[-17] = 3
    with pytest.raises(VersionError, match="stream version 3"):
        decode_challenge(bytes(preamble))


@pytest.mark.parametrize("preamble", [b"", b"\x06\x06", b"x" * CHALLENGE_PREAMBLE_BYTES])
def test_anything_but_a_challenge_is_a_decode_error(preamble):
    with pytest.raises(DecodeError):
        decode_challenge(preamble)


def test_a_version_1_hello_is_refused_by_name():
    with pytest.raises(VersionError, match="version 1"):
        decode_hello(msgpack.packb(["swarmnode-stream", 1, "127.0.0.1", 7946]))


def test_frame_contexts_differ_by_challenge_and_position():
    contexts = {frame_context(c, seq) for c in (CHALLENGE, bytes(16)) for seq in range(3)}
    assert len(contexts) == 6


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
        msgpack.packb(["other", 2, "127.0.0.1", 1, CHALLENGE]),
        msgpack.packb(["swarmnode-stream", 2, "localhost", 1, CHALLENGE]),
        msgpack.packb(["swarmnode-stream", 2, "127.0.0.1", 0, CHALLENGE]),
        msgpack.packb(["swarmnode-stream", 2, "127.0.0.1", 70000, CHALLENGE]),
        msgpack.packb(["swarmnode-stream", 2, "127.0.0.1", True, CHALLENGE]),
        msgpack.packb(["swarmnode-stream", 2, "127.0.0.1", 1, CHALLENGE[:15]]),
        msgpack.packb(["swarmnode-stream", 2, "127.0.0.1", 1, "not bytes"]),
        msgpack.packb(["swarmnode-stream", 2, "127.0.0.1"]),
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
        address, challenge = decode_hello(payload)
    except DecodeError:
        return
    assert parse_address(address) == address
    assert len(challenge) == 16


def test_addresses_are_canonicalised():
    assert parse_address(["0:0:0:0:0:0:0:1", 80]) == ("::1", 80)
