#!/usr/bin/env python3
"""Sealed envelopes: what a keyed node does with a packet before anything is decrypted.

The input is a packet as it arrives. Must hold: `open_envelope` returns what
it opened (payload, sender's stamp, nonce) or raises `DecodeError`
(`AuthenticationError` for trust failures) and nothing else, with and without
a keyring; a packet sealed under the ring's key opens to its payload, and any
single flipped byte of it is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

from swarmnode.errors import DecodeError
from swarmnode.transport.envelope import open_envelope, seal_envelope
from swarmnode.transport.keyring import Keyring

RING = Keyring([bytes(range(32)), bytes(range(1, 33))])


def check(data: bytes) -> None:
    for ring in (None, RING):
        try:
            out = open_envelope(data, ring)
        except DecodeError:
            continue
        assert isinstance(out.payload, bytes)
    sealed = seal_envelope(data, RING, nonce_source=lambda n: bytes(n))
    assert open_envelope(sealed, RING).payload == data
    if data:
        at = data[0] % len(sealed)
        tampered = bytearray(sealed)
        tampered[at] ^= 0x01
        try:
            open_envelope(bytes(tampered), RING)
        except DecodeError:
            return
        raise AssertionError(f"a packet with byte {at} flipped was accepted")


if __name__ == "__main__":
    main(check)
