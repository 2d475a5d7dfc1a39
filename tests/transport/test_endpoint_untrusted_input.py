"""Whatever arrives on the gossip port, the endpoint counts it, drops it and keeps working."""

from __future__ import annotations

import asyncio
import os
import random
import socket

import msgpack

from swarmnode.transport import Keyring, TransportConfig, seal_envelope
from swarmnode.transport.framing import ACK, frame, frame_context

from .conftest import DEADLINE, eventually
from .wire import connect, hello_frame, message_frame

KEY = os.urandom(32)
RING = Keyring([KEY])
WRONG = Keyring([os.urandom(32)])


REFUSALS = (
    "dropped_auth",
    "dropped_decode",
    "dropped_oversize",
    "dropped_version",
    "hellos_failed",
    "hellos_replayed",
)


def drops(node) -> int:
    stats = node.endpoint.stats()
    return sum(stats[name] for name in REFUSALS)


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


async def raw_stream(node, make_data) -> bytes:
    """Send `make_data(challenge)` on a fresh connection and return everything answered."""
    stream = await connect(node.address)
    stream.writer.write(make_data(stream.challenge))
    try:
        return await stream.answer()
    finally:
        stream.close()


def then(*frames):
    """Bytes after an honest hello: each item is bytes, or a function of the challenge."""
    return lambda c: hello_frame(RING, c) + b"".join(f(c) if callable(f) else f for f in frames)


async def test_garbage_on_the_stream_port_is_dropped_and_the_connection_cut(make_node):
    node = await make_node([KEY], config=TransportConfig(max_stream_message=10_000))
    rng = random.Random(2)
    x = msgpack.packb([{"t": "x"}])
    attempts = [
        lambda c: rng.randbytes(2000),
        lambda c: b"\x00\x00\x00\x00",
        lambda c: b"\x00\x00\x01\x00" + rng.randbytes(256),
        lambda c: b"\x00\x00\x00\x64" + b"short then EOF",
        lambda c: b"\x00\x00\x10\x00" + b"hello frame over its cap",
        lambda c: hello_frame(WRONG, c),
        lambda c: hello_frame(None, c),
        lambda c: frame(seal_envelope(b"\x92\xa1x\x01", RING)),
        then(lambda c: frame(seal_envelope(b"\xc1", RING, context=frame_context(c, 0)))),
        then(lambda c: message_frame(WRONG, c, 0, {"t": "x"})),
        then(lambda c: message_frame(None, c, 0, {"t": "x"})),
        then(frame(seal_envelope(x, RING))),  # a datagram's envelope replayed into a stream
        then(lambda c: message_frame(RING, c, 1, {"t": "x"})),  # a frame out of its place
        then(b"\x00\x01\x00\x00" + b"frame over the stream cap"),
        then(b"\x00\x00\x00\x00"),
        then(b"\x00\x00\x03\xe8" + b"truncated frame"),
    ]
    for count, make_data in enumerate(attempts, start=1):
        answer = await raw_stream(node, make_data)
        assert answer in (b"", ACK)
        await eventually(lambda count=count: drops(node) == count)
    assert node.inbox == []
    assert node.stat("stream_buffered_bytes") == 0
    await still_works(node, make_node)


async def test_a_silent_connection_is_cut_after_the_hello_timeout(make_node):
    node = await make_node([KEY], config=TransportConfig(stream_hello_timeout=0.2))
    stream = await connect(node.address)
    stream.writer.write(b"\x00\x00")
    async with asyncio.timeout(DEADLINE):
        assert await stream.reader.read() == b""
    stream.close()
    assert node.stat("streams_hello_timeout") == 1
    assert node.stat("streams_unauthenticated") == 0


async def test_a_frame_that_stalls_midway_is_cut_after_the_frame_timeout(make_node):
    node = await make_node([KEY], config=TransportConfig(stream_frame_timeout=0.2))
    stream = await connect(node.address)
    stream.writer.write(hello_frame(RING, stream.challenge))
    stream.writer.write(b"\x00\x00\x03\xe8" + b"only part of the body")
    async with asyncio.timeout(DEADLINE):
        assert await stream.reader.read() == ACK
    stream.close()
    assert node.stat("stream_frames_timed_out") == 1
    assert node.stat("stream_buffered_bytes") == 0
    await still_works(node, make_node)


async def test_a_frame_header_sent_in_part_is_cut_after_the_frame_timeout(make_node):
    node = await make_node([KEY], config=TransportConfig(stream_frame_timeout=0.2))
    stream = await connect(node.address)
    stream.writer.write(hello_frame(RING, stream.challenge) + b"\x00\x00")
    async with asyncio.timeout(DEADLINE):
        assert await stream.reader.read() == ACK
    stream.close()
    assert node.stat("stream_frames_timed_out") == 1


async def test_an_authenticated_frame_is_acknowledged_and_delivered_from_the_declared_address(
    make_node,
):
    node = await make_node([KEY])
    stream = await connect(node.address)
    stream.writer.write(
        hello_frame(RING, stream.challenge, ("127.0.0.9", 4000))
        + message_frame(RING, stream.challenge, 0, {"t": "state", "k": 1})
        + message_frame(RING, stream.challenge, 1, {"t": "state", "k": 2})
    )
    async with asyncio.timeout(DEADLINE):
        assert await stream.reader.readexactly(3) == ACK * 3
    stream.close()
    assert node.inbox == [
        (("127.0.0.9", 4000), {"t": "state", "k": 1}),
        (("127.0.0.9", 4000), {"t": "state", "k": 2}),
    ]


async def authenticated(node, source: str = "127.0.0.1"):
    stream = await connect(node.address, source=source)
    stream.writer.write(hello_frame(RING, stream.challenge))
    async with asyncio.timeout(DEADLINE):
        assert await stream.reader.readexactly(1) == ACK
    return stream


async def test_authenticated_connections_beyond_the_inbound_limit_are_refused(make_node):
    node = await make_node([KEY], config=TransportConfig(max_inbound_streams=2))
    held = [await authenticated(node, "127.0.0.1"), await authenticated(node, "127.0.0.2")]
    assert node.stat("streams_authenticated") == 2
    refused = await connect(node.address, source="127.0.0.3")
    refused.writer.write(hello_frame(RING, refused.challenge))
    assert await refused.answer() == b""
    assert node.stat("streams_refused_inbound_cap") == 1
    for stream in held:
        stream.close()
    await eventually(lambda: node.stat("streams_authenticated") == 0)
    await still_works(node, make_node)


async def test_authenticated_connections_beyond_the_per_address_limit_are_refused(make_node):
    node = await make_node([KEY], config=TransportConfig(max_inbound_streams_per_address=2))
    held = [await authenticated(node, "127.0.0.2") for _ in range(2)]
    refused = await connect(node.address, source="127.0.0.2")
    refused.writer.write(hello_frame(RING, refused.challenge))
    assert await refused.answer() == b""
    assert node.stat("streams_refused_address_cap") == 1
    other = await authenticated(node, "127.0.0.3")
    assert node.stat("streams_authenticated") == 3
    for stream in [*held, other]:
        stream.close()
