"""The envelope every gossip packet and stream frame travels in.

Sealed (a cluster key is configured), format 2::

    kind 0x03 (1) | key id (4) | sent ms (8) | nonce (12) | ciphertext | Poly1305 tag (16)

Plaintext (no key: loopback-only or `--insecure` clusters)::

    kind 0x02 (1) | payload

The kind byte doubles as the format version: a new format gets a new kind, and
a node rejects kinds it does not know. Kind 0x01 was the sealed format 1 (no
timestamp); it is refused with `VersionError`, so a node of an older release
shows up as `dropped_version` on its peers instead of being misread.

The whole sealed header is authenticated as associated data, together with a
*context* that is not sent: `DATAGRAM_CONTEXT` for datagrams, and for streams
the hello context or one naming the connection's challenge and the frame's
position (see framing.py). An envelope therefore opens only in the place it
was sealed for: a datagram cannot pass for a stream frame, nor a frame of one
connection for a frame of another.

`sent ms` is the sender's wall clock (Unix milliseconds) when it sealed the
envelope. Together with the random nonce it is what the receiver's replay
window (replay.py) checks for datagrams: an old captured datagram is refused
for its age, a recent one for its nonce having been seen.

ChaCha20-Poly1305 rather than AES-GCM: it is constant-time and fast in pure
software, so nodes on hosts without AES instructions (small ARM boards are
common among agent hosts) pay no penalty and have no timing side channel; and
the consequences of a repeated nonce stay local (Poly1305's one-time key is
derived per nonce, so only packets under that nonce are exposed), whereas a
repeated AES-GCM nonce leaks the GHASH key and lets an attacker forge any
packet under the cluster key. With random 96-bit nonces the collision odds stay
below 2**-32 for the first 2**32 packets sealed under one key across the whole
cluster; rotate keys (see keyring.py) well before that.

A keyed node refuses plaintext packets and a keyless node refuses sealed ones:
a mixed cluster is a misconfiguration that should show up in `dropped_auth`,
not half-work. Plaintext envelopes carry no timestamp: without a key anyone can
forge any packet, so replay protection would protect nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import NamedTuple

from cryptography.exceptions import InvalidTag

from swarmnode.errors import DecodeError
from swarmnode.transport.keyring import KEY_ID_BYTES, Keyring

KIND_SEALED_V1 = 0x01
"""The retired sealed format 1; recognised only to refuse it by name."""
KIND_PLAIN = 0x02
KIND_SEALED = 0x03
SENT_MS_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
SEALED_HEADER_BYTES = 1 + KEY_ID_BYTES + SENT_MS_BYTES + NONCE_BYTES
SEALED_OVERHEAD = SEALED_HEADER_BYTES + TAG_BYTES
PLAIN_OVERHEAD = 1

DATAGRAM_CONTEXT = b"swarmnode/datagram"
"""Associated data of every gossip datagram (and the default of seal and open)."""

NonceSource = Callable[[int], bytes]
"""Returns n fresh random bytes; `os.urandom` for real nodes, a seeded RNG in the simulator."""


class AuthenticationError(DecodeError):
    """A well-formed envelope this node must not trust: unknown key, bad tag, wrong kind."""


class VersionError(DecodeError):
    """An envelope or handshake of another protocol version: a node of another release."""


class Opened(NamedTuple):
    """What an envelope carried. Sealed envelopes also give when and under which nonce."""

    payload: bytes
    sent_ms: int | None
    nonce: bytes | None


def envelope_overhead(keyring: Keyring | None) -> int:
    """Bytes an envelope adds to its payload, for datagram budgeting."""
    return SEALED_OVERHEAD if keyring is not None else PLAIN_OVERHEAD


def wall_ms() -> int:
    """The wall clock in Unix milliseconds: what `sent ms` means."""
    return time.time_ns() // 1_000_000


def seal_envelope(
    payload: bytes,
    keyring: Keyring | None,
    *,
    sent_ms: int | None = None,
    context: bytes = DATAGRAM_CONTEXT,
    nonce_source: NonceSource = os.urandom,
) -> bytes:
    """Wrap a payload: sealed under the primary key, or plaintext when there is no keyring.

    `sent_ms` defaults to the wall clock now; `context` must be what the
    receiver will open the envelope with.
    """
    if keyring is None:
        return bytes((KIND_PLAIN,)) + payload
    if sent_ms is None:
        sent_ms = wall_ms()
    if not 0 <= sent_ms < 1 << (8 * SENT_MS_BYTES):
        raise ValueError(f"sent_ms {sent_ms} does not fit {SENT_MS_BYTES} unsigned bytes")
    key = keyring.primary
    nonce = nonce_source(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce source returned {len(nonce)} bytes, expected {NONCE_BYTES}")
    header = bytes((KIND_SEALED,)) + key.key_id + sent_ms.to_bytes(SENT_MS_BYTES, "big") + nonce
    return header + key.aead.encrypt(nonce, payload, header + context)


def open_envelope(
    packet: bytes, keyring: Keyring | None, *, context: bytes = DATAGRAM_CONTEXT
) -> Opened:
    """The contents of a packet; raises DecodeError (AuthenticationError for trust failures,
    VersionError for an envelope of another format)."""
    if not packet:
        raise DecodeError("empty packet")
    kind = packet[0]
    if kind == KIND_PLAIN:
        if keyring is not None:
            raise AuthenticationError("plaintext packet refused: this node requires a cluster key")
        return Opened(bytes(packet[1:]), None, None)
    if kind == KIND_SEALED_V1:
        raise VersionError(
            "sealed envelope format 1 (kind 0x01) refused: the sender runs a swarmnode "
            "older than replay protection; upgrade it"
        )
    if kind != KIND_SEALED:
        raise DecodeError(f"unknown envelope kind 0x{kind:02x}")
    if keyring is None:
        raise AuthenticationError("sealed packet refused: this node has no cluster key")
    if len(packet) < SEALED_OVERHEAD:
        raise DecodeError(f"sealed packet truncated: {len(packet)} bytes < {SEALED_OVERHEAD}")
    key_id = bytes(packet[1 : 1 + KEY_ID_BYTES])
    key = keyring.lookup(key_id)
    if key is None:
        raise AuthenticationError(f"unknown key id {key_id.hex()}")
    header = bytes(packet[:SEALED_HEADER_BYTES])
    sent_at = 1 + KEY_ID_BYTES
    nonce = header[sent_at + SENT_MS_BYTES :]
    try:
        payload = key.aead.decrypt(nonce, bytes(packet[SEALED_HEADER_BYTES:]), header + context)
    except InvalidTag:
        raise AuthenticationError(f"authentication failed (key id {key_id.hex()})") from None
    return Opened(payload, int.from_bytes(header[sent_at : sent_at + SENT_MS_BYTES], "big"), nonce)
