#!/usr/bin/env python3
"""Stream frames: the TCP side of gossip, a 4-byte length then an envelope; the first a hello.

The first 4 bytes are a frame header, the rest a hello payload. Must hold:
`frame_length` returns a length in 1..limit or raises `DecodeError`
(`FrameTooLarge` above the limit); `decode_hello` returns a canonical
(IP literal, port 1..65535) or raises `DecodeError`.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

from swarmnode.errors import DecodeError
from swarmnode.transport.framing import decode_hello, frame_length

LIMIT = 32 << 20


def check(data: bytes) -> None:
    try:
        n = frame_length(data[:4], LIMIT)
        assert 1 <= n <= LIMIT
    except DecodeError:
        pass
    try:
        host, port = decode_hello(data[4:])
    except DecodeError:
        return
    assert str(ipaddress.ip_address(host)) == host and 0 < port < 65536


if __name__ == "__main__":
    main(check)
