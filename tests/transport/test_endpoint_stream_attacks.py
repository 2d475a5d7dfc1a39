"""Hostile peers on the stream port, as the audit played them, against real endpoints.

A hello recorded off the wire (by a relay between two real endpoints) is
replayed on new connections; idle connections are opened by the dozen; frames
are announced that would fill the node's memory. None of it gets a message
delivered, makes the node buffer more than its caps, or keeps a real peer out.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket

import pytest

from swarmnode.transport import Keyring, TransportConfig
from swarmnode.transport.framing import FRAME_HEADER_BYTES, HELLO_MAX_FRAME

from .conftest import DEADLINE, eventually
from .wire import connect, hello_frame, split_frames, stream_tap

KEY = os.urandom(32)
RING = Keyring([KEY])
MIB = 1 << 20


def rss_bytes() -> int:
    with open("/proc/self/status") as status_file:
        status = status_file.read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024


async def recorded_hello_and_message(sender, receiver) -> tuple[bytes, bytes]:
    """The first two frames `sender` sent to `receiver` through a recording relay."""
    async with stream_tap(receiver.address) as tap:
        sender.endpoint.send(tap.address, [{"t": "state", "v": b"s" * 5000}])
        await eventually(lambda: len(receiver.inbox) == 1)
        hello, message = split_frames(bytes(tap.sent[0]))[:2]
    return hello, message


async def test_a_hello_recorded_off_the_wire_opens_nothing_when_replayed(make_node):
    sender, receiver = await make_node([KEY]), await make_node([KEY])
    hello, message = await recorded_hello_and_message(sender, receiver)
    for attempt in range(1, 11):
        stream = await connect(receiver.address)
        stream.writer.write(hello + message)
        assert await stream.answer() == b"", "a replayed hello was acknowledged"
        stream.close()
        assert receiver.stat("hellos_replayed") == attempt
    assert len(receiver.inbox) == 1
    assert receiver.stat("streams_authenticated") == 1  # the sender's own connection only


async def test_replayed_hellos_followed_by_huge_frames_make_the_receiver_buffer_nothing(
    make_node,
):
    config = TransportConfig.local()
    sender, receiver = await make_node([KEY]), await make_node([KEY], config=config)
    hello, message = await recorded_hello_and_message(sender, receiver)
    announce = config.max_stream_message.to_bytes(FRAME_HEADER_BYTES, "big")
    budget = 8 * MIB  # what each connection tries to push; 60 of them: 480 MiB
    junk = memoryview(os.urandom(MIB))
    loop = asyncio.get_running_loop()

    attackers = []
    for n in range(60):
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((f"127.0.1.{n + 1}", 0))
        await loop.sock_connect(sock, receiver.address)
        sock.send(hello + message + announce)
        attackers.append([sock, 0])
    baseline, peak = rss_bytes(), 0
    async with asyncio.timeout(DEADLINE):
        while any(sent < budget for _, sent in attackers):
            for attacker in attackers:
                sock, sent = attacker
                if sent >= budget:
                    continue
                try:
                    attacker[1] += sock.send(junk[: min(len(junk), budget - sent)])
                except BlockingIOError:
                    pass
                except OSError:  # closed by the receiver
                    attacker[1] = budget + 1
            peak = max(peak, rss_bytes())
            await asyncio.sleep(0)
    for sock, _ in attackers:
        sock.close()

    assert all(sent == budget + 1 for _, sent in attackers), "the receiver read a whole frame"
    await eventually(
        lambda: (
            receiver.stat("hellos_replayed") + receiver.stat("streams_shed_unauthenticated") == 60
        )
    )
    assert receiver.stat("hellos_replayed") >= 1
    assert len(receiver.inbox) == 1
    hello_cap = config.max_unauthenticated_streams * (FRAME_HEADER_BYTES + HELLO_MAX_FRAME)
    assert receiver.stat("stream_buffered_bytes_peak") <= hello_cap + len(message)
    assert peak - baseline < 64 * MIB, f"RSS grew by {(peak - baseline) / MIB:.0f} MiB"


@pytest.mark.parametrize(
    "sources",
    [["127.0.0.1"], [f"127.0.2.{n}" for n in range(1, 21)]],
    ids=["one-address-shared-with-the-peer", "twenty-addresses"],
)
async def test_idle_unauthenticated_connections_cannot_keep_a_real_peer_out(make_node, sources):
    # Idle connections are never cut by their deadline during this test: what lets
    # the real peer in must be the pools, not time passing.
    config = TransportConfig(stream_hello_timeout=10 * DEADLINE)
    receiver = await make_node([KEY], config=config)
    sender = await make_node([KEY])
    idle = []
    for n in range(80):
        local = (sources[n % len(sources)], 0)
        idle.append(await asyncio.open_connection(*receiver.address, local_addr=local))
    shed = "streams_shed_unauthenticated"
    await eventually(lambda: receiver.stat("streams_unauthenticated") + receiver.stat(shed) == 80)
    per_address = config.max_unauthenticated_streams_per_address
    held = min(config.max_unauthenticated_streams, per_address * len(sources))
    assert receiver.stat("streams_unauthenticated") == held

    value = os.urandom(300_000)
    sender.endpoint.send(receiver.address, [{"t": "state", "v": value}])
    await eventually(lambda: len(receiver.inbox) == 1)
    assert receiver.inbox[0][1]["v"] == value
    assert receiver.stat("streams_hello_timeout") == 0
    assert sender.stat("send_errors") == 0
    assert receiver.stat(shed) == 80 - held + 1  # the peer's arrival shed one more idle one
    assert receiver.stat("streams_unauthenticated") == held - 1

    for _, writer in idle:
        writer.close()
    await eventually(lambda: receiver.stat("streams_unauthenticated") == 0)


async def authenticated(node, source: str):
    stream = await connect(node.address, source=source)
    stream.writer.write(hello_frame(RING, stream.challenge))
    async with asyncio.timeout(DEADLINE):
        await stream.reader.readexactly(1)
    return stream


async def test_frames_beyond_the_buffer_caps_are_refused_before_their_body_is_read(make_node):
    frame_bytes = FRAME_HEADER_BYTES + 100_000
    config = TransportConfig(
        max_stream_message=100_000,
        max_inbound_buffer_bytes_per_address=frame_bytes + 50_000,
        max_inbound_buffer_bytes=2 * frame_bytes + 50_000,
    )
    node = await make_node([KEY], config=config)
    announce = (100_000).to_bytes(FRAME_HEADER_BYTES, "big")
    first = await authenticated(node, "127.0.3.1")
    first.writer.write(announce + b"x" * 1000)
    await eventually(lambda: node.stat("stream_buffered_bytes") == frame_bytes)

    same_address = await authenticated(node, "127.0.3.1")
    same_address.writer.write(announce)
    assert await same_address.answer() == b""
    assert node.stat("streams_refused_address_buffer_cap") == 1

    other_address = await authenticated(node, "127.0.3.2")
    other_address.writer.write(announce)
    await eventually(lambda: node.stat("stream_buffered_bytes") == 2 * frame_bytes)

    third_address = await authenticated(node, "127.0.3.3")
    third_address.writer.write(announce)
    assert await third_address.answer() == b""
    assert node.stat("streams_refused_buffer_cap") == 1
    # Two frames, and at most one hello read at the same time.
    hello_bytes = FRAME_HEADER_BYTES + HELLO_MAX_FRAME
    assert (
        2 * frame_bytes <= node.stat("stream_buffered_bytes_peak") <= 2 * frame_bytes + hello_bytes
    )

    for stream in (first, same_address, other_address, third_address):
        stream.close()
    await eventually(lambda: node.stat("stream_buffered_bytes") == 0)
