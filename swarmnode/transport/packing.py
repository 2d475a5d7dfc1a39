"""Gossip messages to datagram payloads and back.

A payload (the plaintext inside one envelope) is a msgpack array of messages,
each a map with a str "t". Packing several messages into one payload is what
keeps gossip to a few datagrams per round: SWIM probes, acks and delta batches
for one peer share a packet instead of paying per-message headers.

Decoding is strict because every byte comes from the network: limits on every
length are derived from the payload size, so a few hostile bytes can never ask
for a large allocation; ext types are refused; map keys must be str or bytes
(an int key lets a sender choose colliding hashes). Every failure is a
DecodeError. `encode_message` runs the same decoder over what it produced, so a
message that receivers would refuse fails loudly at the sender instead of being
counted as `dropped_decode` on every other node.

Stream frames carry payloads of this same format, one message per frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgpack

from swarmnode.errors import DecodeError
from swarmnode.sansio import Message

MAX_UDP_PAYLOAD = 65507
"""The largest UDP payload IPv4 can carry; no datagram budget may exceed it."""

_DECODE_ERRORS = (ValueError, TypeError, OverflowError, msgpack.UnpackException)


@dataclass(frozen=True)
class Packing:
    """Messages grouped for the wire.

    `datagrams` are payloads that each fit the budget; `streamed` are payloads
    of a single message too large for any datagram, which the caller must send
    over a stream rather than drop.
    """

    datagrams: list[bytes] = field(default_factory=list)
    streamed: list[bytes] = field(default_factory=list)


def encode_message(message: Message) -> bytes:
    """Encode one message; raises ValueError if it is not one receivers would accept."""
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ValueError("a gossip message is a dict with a str 't' field")
    try:
        encoded = msgpack.packb(message, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"message t={message['t']!r} is not msgpack-encodable: {exc}") from exc
    try:
        _check_message(_decode(encoded))
    except DecodeError as exc:
        raise ValueError(
            f"message t={message['t']!r} would be refused by receivers: {exc}"
        ) from exc
    return encoded


def pack_messages(messages: Iterable[Message], max_payload: int) -> Packing:
    """Group messages into as few payloads of at most `max_payload` bytes as first fit finds.

    Messages keep their relative order within each payload. A message that
    would not fit even alone goes to `streamed`.

    Linear in the messages when they are large: a busy node's gossip round gives a
    peer dozens of messages that each nearly fill a datagram, and looking through
    every earlier payload for each of them made packing quadratic. `roomiest` bounds
    the room payloads have left (rooms only shrink), so a message larger than it
    opens a new payload at once, as the search would have; a search that finds no
    room makes the bound exact.
    """
    if max_payload < 1:
        raise ValueError("max_payload must be positive")
    bins: list[list[bytes]] = []
    sizes: list[int] = []
    streamed: list[bytes] = []
    roomiest = 0
    for message in messages:
        encoded = encode_message(message)
        length = len(encoded)
        if _array_header_len(1) + length > max_payload:
            streamed.append(_array_header(1) + encoded)
            continue
        placed = False
        if length <= roomiest:
            seen = 0
            for index, members in enumerate(bins):
                room = max_payload - sizes[index] - _array_header_len(len(members) + 1)
                if length <= room:
                    members.append(encoded)
                    sizes[index] += length
                    placed = True
                    break
                seen = max(seen, room)
            else:
                roomiest = seen  # every payload was looked at: the bound is exact
        if not placed:
            bins.append([encoded])
            sizes.append(length)
            roomiest = max(roomiest, max_payload - length - _array_header_len(2))
    datagrams = [_array_header(len(members)) + b"".join(members) for members in bins]
    return Packing(datagrams=datagrams, streamed=streamed)


def unpack_datagram(payload: bytes) -> list[Message]:
    """The messages of a payload (datagram or stream frame); raises DecodeError."""
    value = _decode(payload)
    if not isinstance(value, list) or not value:
        raise DecodeError("a payload is a non-empty array of messages")
    for message in value:
        _check_message(message)
    return value


def _decode(data: bytes) -> object:
    size = len(data)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=0,
        )
    except _DECODE_ERRORS as exc:
        raise DecodeError(f"malformed msgpack: {type(exc).__name__}: {exc}") from None


def _check_message(value: object) -> None:
    if not isinstance(value, dict):
        raise DecodeError(f"a message is a map, got {type(value).__name__}")
    if not isinstance(value.get("t"), str):
        raise DecodeError("a message needs a str 't' field")


def _array_header_len(count: int) -> int:
    if count < 16:
        return 1
    if count < 1 << 16:
        return 3
    return 5


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")
