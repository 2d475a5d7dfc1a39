#!/usr/bin/env python3
"""The entry codec: CRDT states from gossip deltas, anti-entropy transfers and the disk.

Must hold: `decode_entry` returns an `Entry` or raises `DecodeError`, nothing
else; and the codec is canonical: what decodes re-encodes to bytes that
decode to an equal entry and re-encode to themselves (digests of equal
states must be equal on every replica).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

from swarmnode.crdt.codec import decode_entry, encode_entry
from swarmnode.errors import DecodeError


def check(data: bytes) -> None:
    try:
        entry = decode_entry(data)
    except DecodeError:
        return
    again = encode_entry(entry)
    assert decode_entry(again) == entry
    assert encode_entry(decode_entry(again)) == again


if __name__ == "__main__":
    main(check)
