"""Whatever arrives on the gossip port, the endpoint counts it, drops it and keeps working."""

from __future__ import annotations

import asyncio
import os
import random
import socket

import msgpack

from swarmnode.transport import Keyring, TransportConfig, seal_envelope
from swarmnode.transport.framing import ACK, encode_hello, frame

from .conftest import DEADLINE, eventually

KEY = os.urandom(32)
RING = Keyring([KEY])
WRONG = Keyring([os.urandom(32)])


def drops(node) -> int:
    stats = node.endpoint.stats()
    return stats["dropped_auth"] + stats["dropped_decode"] + stats["dropped_oversize"]


async def still_works(node, make_node) -> None:
    peer = await make_node([KEY])
    peer.endpoint.send(node.address, [{"t": "small"}, {"t": "big", "v": b"v" * 5000}])
    await eventually(lambda: {m["t"] for m in node.messages()} == {"small", "big"})


async def test_garbage_datagrams_are_counted_and_deliver_nothing(make_node):
    node = await make_node([KEY])
    rng = random.Random(1)
    packets = [rng.randbytes(rng.randrange(1, 1500)) for _ in range(300)]
    packets += [
        b"",
        seal_envelope(msgpack.packb([{"t": "plain"}]), None),
        seal_envelope(msgpack.packb([{"t": "wrong key"}]), WRONG),
        seal_envelope(b"\xc1 not msgpack", RING),
        seal_envelope(msgpack.packb([["not", "a", "map"]]), RING),
        seal_envelope(msgpack.packb({"t": "not in an array"}), RING),
        seal_envelope(b"\x91" * 1000, RING),
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        for sent, packet in enumerate(packets, start=1):
            raw.sendto(packet, node.address)
            if sent % 20 == 0:  # stay within the socket buffer: loopback drops overflow too
                await eventually(lambda sent=sent: node.stat("datagrams_in") == sent)
    await eventually(lambda: drops(node) == len(packets))
    assert node.inbox == []
    assert node.stat("dropped_auth") >= 2
    await still_works(node, make_node)


async def raw_stream(node, data: bytes, *, half_close: bool = True) -> bytes:
    """Send bytes on a fresh connection and return everything the endpoint answers."""
    reader, writer = await asyncio.open_connection(*node.address)
    writer.write(data)
    if half_close:
        writer.write_eof()
    try:
        async with asyncio.timeout(DEADLINE):
            return await reader.read()
    finally:
        writer.close()


def hello(ring, address=("127.0.0.1", 7946)) -> bytes:
    return frame(seal_envelope(encode_hello(address), ring))


async def test_garbage_on_the_stream_port_is_dropped_and_the_connection_cut(make_node):
    node = await make_node([KEY], config=TransportConfig(max_stream_message=10_000))
    rng = random.Random(2)
    attempts = [
        rng.randbytes(2000),
        b"\x00\x00\x00\x00",
        b"\x00\x00\x01\x00" + rng.randbytes(256),
        b"\x00\x00\x00\x64" + b"short then EOF",
        b"\x00\x00\x10\x00" + b"hello frame over its cap",
        hello(WRONG),
        frame(seal_envelope(b"\x92\xa1x\x01", RING)),
        hello(RING) + frame(seal_envelope(b"\xc1", RING)),
        hello(RING) + frame(seal_envelope(msgpack.packb([{"t": "x"}]), WRONG)),
        hello(RING) + frame(seal_envelope(msgpack.packb([{"t": "x"}]), None)),
        hello(RING) + b"\x00\x01\x00\x00" + b"frame over the stream cap",
        hello(RING) + b"\x00\x00\x00\x00",
        hello(RING) + b"\x00\x00\x03\xe8" + b"truncated frame",
    ]
    for count, data in enumerate(attempts, start=1):
        answer = await raw_stream(node, data)
        assert answer in (b"", ACK)
        await eventually(lambda count=count: drops(node) == count)
    assert node.inbox == []
    await still_works(node, make_node)


async def test_a_silent_connection_is_cut_after_the_hello_timeout(make_node):
    node = await make_node([KEY], config=TransportConfig(stream_hello_timeout=0.2))
    assert await raw_stream(node, b"\x00\x00", half_close=False) == b""
    assert node.stat("dropped_decode") == 1


async def test_a_frame_that_stalls_midway_is_cut_after_the_frame_timeout(make_node):
    node = await make_node([KEY], config=TransportConfig(stream_frame_timeout=0.2))
    stalled = hello(RING) + b"\x00\x00\x03\xe8" + b"only part of the body"
    assert await raw_stream(node, stalled, half_close=False) == ACK
    assert node.stat("dropped_decode") == 1
    await still_works(node, make_node)


async def test_an_authenticated_frame_is_acknowledged_and_delivered_from_the_declared_address(
    make_node,
):
    node = await make_node([KEY])
    data = hello(RING, ("127.0.0.9", 4000)) + frame(
        seal_envelope(msgpack.packb([{"t": "state", "k": 1}]), RING)
    )
    reader, writer = await asyncio.open_connection(*node.address)
    writer.write(data)
    async with asyncio.timeout(DEADLINE):
        assert await reader.readexactly(2) == ACK * 2
    writer.close()
    assert node.inbox == [(("127.0.0.9", 4000), {"t": "state", "k": 1})]


async def test_connections_beyond_the_inbound_limit_are_refused(make_node):
    node = await make_node([KEY], config=TransportConfig(max_inbound_streams=2))
    held = [await asyncio.open_connection(*node.address) for _ in range(2)]
    for reader, writer in held:
        writer.write(hello(RING))
        async with asyncio.timeout(DEADLINE):
            assert await reader.readexactly(1) == ACK
    assert await raw_stream(node, b"") == b""
    assert node.stat("streams_refused") == 1
    for _, writer in held:
        writer.close()
    await still_works(node, make_node)
