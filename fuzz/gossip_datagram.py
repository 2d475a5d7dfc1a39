#!/usr/bin/env python3
"""Gossip datagrams: what arrives on the UDP port once the envelope is open.

A plaintext envelope (kind 0x02, as keyless loopback clusters use) is opened,
its payload unpacked into messages, and each SWIM message decoded, exactly
as a receiving node does. Must hold: only `DecodeError` is ever raised; an
unpacked payload is a non-empty list of maps with a str `t`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

from swarmnode.errors import DecodeError
from swarmnode.membership import messages
from swarmnode.transport.envelope import open_envelope
from swarmnode.transport.packing import unpack_datagram


def check(data: bytes) -> None:
    try:
        payload = open_envelope(data, None)
        msgs = unpack_datagram(payload)
    except DecodeError:
        return
    assert isinstance(msgs, list) and msgs
    for msg in msgs:
        assert isinstance(msg, dict) and isinstance(msg.get("t"), str)
        if msg["t"].startswith("swim."):
            with contextlib.suppress(DecodeError):
                messages.decode(msg)


if __name__ == "__main__":
    main(check)
