"""The gossip wire spoken by hand, as an honest or hostile peer would, over real sockets.

`connect` opens a stream and reads the acceptor's challenge; `hello_frame` and
`message_frame` build what an honest initiator sends on it. `StreamTap` and
`capture_datagrams` sit between real endpoints and keep a copy of what crossed,
the way an eavesdropper on the network would, for tests that replay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgpack

from swarmnode.sansio import Address, Message
from swarmnode.transport import Keyring, seal_envelope
from swarmnode.transport.framing import (
    CHALLENGE_PREAMBLE_BYTES,
    FRAME_HEADER_BYTES,
    HELLO_CONTEXT,
    decode_challenge,
    encode_hello,
    frame,
    frame_context,
)

from .conftest import DEADLINE


@dataclass
class Stream:
    """The initiator's side of a raw connection to an endpoint."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    challenge: bytes

    async def answer(self) -> bytes:
        """Half-close and return everything the endpoint says until it closes."""
        if not self.writer.is_closing():
            with contextlib.suppress(OSError):
                self.writer.write_eof()
        async with asyncio.timeout(DEADLINE):
            try:
                return await self.reader.read()
            except ConnectionError:
                return b""

    def close(self) -> None:
        self.writer.close()


async def connect(address: Address, *, source: str | None = None) -> Stream:
    """Connect (from `source` if given) and read the endpoint's challenge."""
    local = (source, 0) if source else None
    reader, writer = await asyncio.open_connection(*address, local_addr=local)
    async with asyncio.timeout(DEADLINE):
        preamble = await reader.readexactly(CHALLENGE_PREAMBLE_BYTES)
    return Stream(reader, writer, decode_challenge(preamble))


def hello_frame(
    ring: Keyring | None, challenge: bytes, address: Address = ("127.0.0.1", 7946)
) -> bytes:
    return frame(seal_envelope(encode_hello(address, challenge), ring, context=HELLO_CONTEXT))


def message_frame(ring: Keyring | None, challenge: bytes, seq: int, *messages: Message) -> bytes:
    payload = msgpack.packb(list(messages), use_bin_type=True)
    return frame(seal_envelope(payload, ring, context=frame_context(challenge, seq)))


def split_frames(data: bytes) -> list[bytes]:
    """Whole frames (header included) in the order they were sent."""
    frames = []
    while data:
        length = int.from_bytes(data[:FRAME_HEADER_BYTES], "big")
        frames.append(data[: FRAME_HEADER_BYTES + length])
        data = data[FRAME_HEADER_BYTES + length :]
    return frames


@dataclass
class StreamTap:
    """A TCP relay in front of an endpoint that records what initiators sent through it."""

    target: Address
    sent: list[bytearray] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def address(self) -> Address:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[:2]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = bytearray()
        self.sent.append(record)
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while chunk := await src.read(65536):
                    if keep:
                        record.extend(chunk)
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))


@contextlib.asynccontextmanager
async def stream_tap(target: Address, host: str = "127.0.0.1") -> AsyncIterator[StreamTap]:
    tap = StreamTap(target)
    tap.server = await asyncio.start_server(tap._relay, host, 0)
    try:
        yield tap
    finally:
        tap.server.close()


@contextlib.asynccontextmanager
async def capture_datagrams(host: str = "127.0.0.1") -> AsyncIterator[tuple[Address, list]]:
    """A UDP socket that keeps every datagram sent to it: (its address, the list)."""
    loop = asyncio.get_running_loop()
    captured: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.setblocking(False)

        async def keep() -> None:
            while True:
                captured.append(await loop.sock_recv(sock, 65536))

        task = loop.create_task(keep())
        try:
            yield sock.getsockname(), captured
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def send_datagrams(to: Address, packets: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in packets:
            sock.sendto(packet, to)
