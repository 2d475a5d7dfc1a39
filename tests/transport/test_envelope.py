"""Sealed and plaintext envelopes: round trips, and DecodeError for everything untrustworthy."""

from __future__ import annotations

import contextlib
import os
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.errors import DecodeError
from swarmnode.transport import (
    PLAIN_OVERHEAD,
    SEALED_OVERHEAD,
    AuthenticationError,
    Keyring,
    VersionError,
    envelope_overhead,
    open_envelope,
    seal_envelope,
)
from swarmnode.transport.envelope import KIND_SEALED_V1

OLD, NEW, OTHER = (Keyring([os.urandom(32)]) for _ in range(3))
ROTATING = Keyring([NEW.primary.secret, OLD.primary.secret])


def test_overhead_is_41_bytes_sealed_and_1_plaintext():
    assert SEALED_OVERHEAD == 41
    assert PLAIN_OVERHEAD == 1
    payload = b"x" * 100
    assert len(seal_envelope(payload, OLD)) == len(payload) + envelope_overhead(OLD)
    assert len(seal_envelope(payload, None)) == len(payload) + envelope_overhead(None)


@given(st.binary(max_size=2000), st.integers(0, 2**64 - 1), st.binary(max_size=40))
def test_sealed_round_trip_gives_back_payload_stamp_and_nonce(payload, sent_ms, context):
    nonces = random.Random(sent_ms)
    packet = seal_envelope(
        payload, OLD, sent_ms=sent_ms, context=context, nonce_source=nonces.randbytes
    )
    opened = open_envelope(packet, OLD, context=context)
    assert opened.payload == payload
    assert opened.sent_ms == sent_ms
    assert opened.nonce == random.Random(sent_ms).randbytes(12)


@given(st.binary(max_size=2000))
def test_plaintext_round_trip(payload):
    assert open_envelope(seal_envelope(payload, None), None) == (payload, None, None)


def test_sealing_stamps_the_wall_clock_by_default():
    before = time.time_ns() // 1_000_000
    opened = open_envelope(seal_envelope(b"now", OLD), OLD)
    assert before <= opened.sent_ms <= time.time_ns() // 1_000_000


def test_an_envelope_opens_only_in_the_context_it_was_sealed_for():
    packet = seal_envelope(b"frame 0", OLD, context=b"connection A frame 0")
    assert open_envelope(packet, OLD, context=b"connection A frame 0").payload == b"frame 0"
    for other in (b"connection B frame 0", b"connection A frame 1", b""):
        with pytest.raises(AuthenticationError):
            open_envelope(packet, OLD, context=other)
    with pytest.raises(AuthenticationError):
        open_envelope(packet, OLD)


def test_the_sealed_format_1_of_older_releases_is_refused_by_name():
    old_format = bytes((KIND_SEALED_V1,)) + OLD.primary.key_id + os.urandom(12 + 40)
    with pytest.raises(VersionError, match="older"):
        open_envelope(old_format, OLD)


@pytest.mark.parametrize("sent_ms", [-1, 2**64])
def test_a_stamp_outside_eight_unsigned_bytes_is_refused(sent_ms):
    with pytest.raises(ValueError, match="sent_ms"):
        seal_envelope(b"p", OLD, sent_ms=sent_ms)


def test_sealed_payload_is_not_visible_on_the_wire():
    payload = b"the secret value " * 8
    assert b"secret" not in seal_envelope(payload, OLD)


def test_fresh_nonce_per_packet():
    assert seal_envelope(b"same", OLD) != seal_envelope(b"same", OLD)


def test_injected_nonce_source_makes_sealing_deterministic():
    def sealed_with_seed(seed):
        rng = random.Random(seed)
        return seal_envelope(b"payload", OLD, sent_ms=1, nonce_source=rng.randbytes)

    assert sealed_with_seed(7) == sealed_with_seed(7)
    assert sealed_with_seed(7) != sealed_with_seed(8)


def test_nonce_source_of_wrong_length_is_refused():
    with pytest.raises(ValueError, match="nonce"):
        seal_envelope(b"p", OLD, nonce_source=lambda n: b"\x00" * (n - 1))


def test_every_single_byte_tamper_is_detected():
    packet = seal_envelope(b"gossip payload", OLD)
    for index in range(len(packet)):
        for flip in (0x01, 0x80):
            tampered = bytearray(packet)
            tampered[index] ^= flip
            with pytest.raises(DecodeError):
                open_envelope(bytes(tampered), OLD)


def test_every_truncation_is_detected():
    packet = seal_envelope(b"gossip payload", OLD)
    for length in range(len(packet)):
        with pytest.raises(DecodeError):
            open_envelope(packet[:length], OLD)


def test_appended_bytes_are_detected():
    with pytest.raises(AuthenticationError):
        open_envelope(seal_envelope(b"gossip", OLD) + b"\x00", OLD)


def test_wrong_key_is_an_authentication_failure():
    with pytest.raises(AuthenticationError, match="unknown key id"):
        open_envelope(seal_envelope(b"gossip", OTHER), OLD)


def test_forged_key_id_fails_authentication():
    packet = bytearray(seal_envelope(b"gossip", OTHER))
    packet[1:5] = OLD.primary.key_id
    with pytest.raises(AuthenticationError, match="authentication failed"):
        open_envelope(bytes(packet), OLD)


def test_rotating_ring_accepts_old_and_new_and_seals_with_new():
    assert open_envelope(seal_envelope(b"from old", OLD), ROTATING).payload == b"from old"
    assert open_envelope(seal_envelope(b"from new", NEW), ROTATING).payload == b"from new"
    assert open_envelope(seal_envelope(b"rotated", ROTATING), NEW).payload == b"rotated"


def test_node_with_only_the_new_key_rejects_the_old_one():
    with pytest.raises(AuthenticationError):
        open_envelope(seal_envelope(b"from old", OLD), NEW)


def test_keyed_node_rejects_plaintext():
    with pytest.raises(AuthenticationError, match="plaintext"):
        open_envelope(seal_envelope(b"gossip", None), OLD)


def test_keyless_node_rejects_sealed():
    with pytest.raises(AuthenticationError, match="no cluster key"):
        open_envelope(seal_envelope(b"gossip", OLD), None)


@pytest.mark.parametrize("packet", [b"", b"\x00", b"\x03abc", b"\xffgossip"])
@pytest.mark.parametrize("ring", [OLD, None])
def test_unknown_kinds_and_empty_packets_are_decode_errors(packet, ring):
    with pytest.raises(DecodeError):
        open_envelope(packet, ring)


@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_decode_error(packet):
    for ring in (OLD, ROTATING):
        with pytest.raises(DecodeError):
            open_envelope(packet, ring)
    with contextlib.suppress(DecodeError):
        open_envelope(packet, None)
