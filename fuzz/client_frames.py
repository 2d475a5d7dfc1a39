#!/usr/bin/env python3
"""Client frames: bytes from any local process on the node's socket, into `RequestDecoder`.

Must hold for every byte string, fed whole or cut into pieces anywhere:
`feed` never raises; every event is a `Request` (int id, str op, dict args),
a `BadFrame` or a `FrameTooLarge` (after which the decoder is spent); the
events do not depend on how the bytes were cut; and nothing is buffered
beyond one frame of at most `max_frame` bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

from swarmnode.api.framing import (
    HEADER_SIZE,
    BadFrame,
    FrameTooLarge,
    Request,
    RequestDecoder,
)

MAX_FRAME = 4096


def _events(data: bytes, cuts: list[int]) -> tuple[list, RequestDecoder]:
    decoder = RequestDecoder(MAX_FRAME)
    events = []
    start = 0
    for cut in [*cuts, len(data)]:
        events += decoder.feed(data[start:cut])
        start = cut
        assert decoder.buffered <= MAX_FRAME + HEADER_SIZE, decoder.buffered
    return events, decoder


def check(data: bytes) -> None:
    whole, decoder = _events(data, [])
    for event in whole:
        if isinstance(event, Request):
            assert type(event.id) is int and isinstance(event.op, str)
            assert isinstance(event.args, dict)
        elif isinstance(event, FrameTooLarge):
            assert decoder.spent and event.length > MAX_FRAME
        else:
            assert isinstance(event, BadFrame), event
    if data:
        # Cut into pieces of 1 to 7 bytes (at most 64 pieces, so long inputs stay cheap).
        step = max(1 + data[0] % 7, len(data) // 64)
        pieces, _ = _events(data, list(range(step, len(data), step)))
        assert [repr(e) for e in pieces] == [repr(e) for e in whole]


if __name__ == "__main__":
    main(check)
