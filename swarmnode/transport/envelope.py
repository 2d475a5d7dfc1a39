"""The envelope every gossip packet and stream frame travels in.

Sealed (a cluster key is configured)::

    kind 0x01 (1) | key id (4) | nonce (12) | ciphertext | Poly1305 tag (16)

Plaintext (no key: loopback-only or `--insecure` clusters)::

    kind 0x02 (1) | payload

The kind byte doubles as the format version: a future format gets a new kind,
and a node rejects kinds it does not know. The whole sealed header is
authenticated as associated data, so flipping the kind or the key id is
detected like any change to the ciphertext.

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
not half-work. Envelopes carry no replay protection; the protocols on top are
idempotent (CRDT joins) or ordered by incarnation numbers, so a replayed packet
changes nothing that a fresh one could not.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag

from swarmnode.errors import DecodeError
from swarmnode.transport.keyring import KEY_ID_BYTES, Keyring

KIND_SEALED = 0x01
KIND_PLAIN = 0x02
NONCE_BYTES = 12
TAG_BYTES = 16
SEALED_HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES
SEALED_OVERHEAD = SEALED_HEADER_BYTES + TAG_BYTES
PLAIN_OVERHEAD = 1

NonceSource = Callable[[int], bytes]
"""Returns n fresh random bytes; `os.urandom` for real nodes, a seeded RNG in the simulator."""


class AuthenticationError(DecodeError):
    """A well-formed envelope this node must not trust: unknown key, bad tag, wrong kind."""


def envelope_overhead(keyring: Keyring | None) -> int:
    """Bytes an envelope adds to its payload, for datagram budgeting."""
    return SEALED_OVERHEAD if keyring is not None else PLAIN_OVERHEAD


def seal_envelope(
    payload: bytes, keyring: Keyring | None, *, nonce_source: NonceSource = os.urandom
) -> bytes:
    """Wrap a payload: sealed under the primary key, or plaintext when there is no keyring."""
    if keyring is None:
        return bytes((KIND_PLAIN,)) + payload
    key = keyring.primary
    nonce = nonce_source(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce source returned {len(nonce)} bytes, expected {NONCE_BYTES}")
    header = bytes((KIND_SEALED,)) + key.key_id + nonce
    return header + key.aead.encrypt(nonce, payload, header)


def open_envelope(packet: bytes, keyring: Keyring | None) -> bytes:
    """The payload of a packet; raises DecodeError (AuthenticationError for trust failures)."""
    if not packet:
        raise DecodeError("empty packet")
    kind = packet[0]
    if kind == KIND_PLAIN:
        if keyring is not None:
            raise AuthenticationError("plaintext packet refused: this node requires a cluster key")
        return bytes(packet[1:])
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
    nonce = header[1 + KEY_ID_BYTES :]
    try:
        return key.aead.decrypt(nonce, bytes(packet[SEALED_HEADER_BYTES:]), header)
    except InvalidTag:
        raise AuthenticationError(f"authentication failed (key id {key_id.hex()})") from None
