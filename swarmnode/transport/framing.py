"""Stream framing for gossip messages too large for one datagram.

A stream is a TCP connection from one node to another's gossip port. Stream
version 2 goes:

1. The acceptor speaks first: a *challenge*, `swarmnode/stream` (16) |
   version (1) | 16 random bytes, fresh for this connection.
2. The initiator answers with a *hello* frame declaring its gossip address
   (the TCP source port is ephemeral and would name nobody) and echoing the
   challenge, sealed under the hello context. A hello captured from another
   connection carries another challenge and is refused as replayed, so
   nothing recorded off the wire opens a connection.
3. Then message frames, each sealed under a context naming the challenge and
   the frame's position on the connection, so a frame cannot be replayed,
   reordered or moved to another connection either.

Each frame is a 4-byte big-endian length followed by an envelope (sealed or
plaintext, as for datagrams). The receiver answers every accepted frame,
the hello included, with one ACK byte, so the sender learns that the frame was
authenticated, decoded and handed to the node, and can count a failure instead
of losing data silently.

Until the hello is authenticated the receiver reads at most
`FRAME_HEADER_BYTES + HELLO_MAX_FRAME` bytes from the connection; only after it
does a frame header up to the large stream cap count. A hello that declares a
wildcard host (a node bound to 0.0.0.0) is completed with the connection's
source address.

A version mismatch is refused by name (`VersionError`): an initiator of
version 1 sends a hello in the retired envelope format and is counted as
`dropped_version`; an initiator meeting a challenge of another version, or no
challenge at all (a version 1 acceptor sends none), counts a send error whose
log line says so.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

import msgpack

from swarmnode.errors import DecodeError
from swarmnode.sansio import Address
from swarmnode.transport.envelope import VersionError

STREAM_VERSION = 2
FRAME_HEADER_BYTES = 4
HELLO_MAX_FRAME = 512
ACK = b"\x06"
CHALLENGE_BYTES = 16
_CHALLENGE_MAGIC = b"swarmnode/stream"
CHALLENGE_PREAMBLE_BYTES = len(_CHALLENGE_MAGIC) + 1 + CHALLENGE_BYTES
HELLO_CONTEXT = b"swarmnode/stream-hello"
_FRAME_CONTEXT = b"swarmnode/stream-frame"
_HELLO_MAGIC = "swarmnode-stream"


class FrameTooLarge(DecodeError):
    """A frame header announcing more bytes than the receiver accepts."""


def frame(envelope: bytes) -> bytes:
    """Prefix an envelope with its length."""
    return len(envelope).to_bytes(FRAME_HEADER_BYTES, "big") + envelope


def frame_length(header: bytes, limit: int) -> int:
    """The body length a frame header announces; DecodeError if empty, FrameTooLarge if over."""
    if len(header) != FRAME_HEADER_BYTES:
        raise DecodeError(f"frame header is {FRAME_HEADER_BYTES} bytes, got {len(header)}")
    length = int.from_bytes(header, "big")
    if length == 0:
        raise DecodeError("empty frame")
    if length > limit:
        raise FrameTooLarge(f"frame of {length} bytes exceeds the limit of {limit}")
    return length


def encode_challenge(challenge: bytes) -> bytes:
    """What an acceptor sends first on a connection."""
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError(f"a challenge is {CHALLENGE_BYTES} bytes, got {len(challenge)}")
    return _CHALLENGE_MAGIC + bytes((STREAM_VERSION,)) + challenge


def decode_challenge(preamble: bytes) -> bytes:
    """The challenge an acceptor sent; VersionError for another stream version."""
    if len(preamble) != CHALLENGE_PREAMBLE_BYTES or not preamble.startswith(_CHALLENGE_MAGIC):
        raise DecodeError("the peer did not send a swarmnode stream challenge")
    version = preamble[len(_CHALLENGE_MAGIC)]
    if version != STREAM_VERSION:
        raise VersionError(f"the peer speaks stream version {version}, this node {STREAM_VERSION}")
    return bytes(preamble[-CHALLENGE_BYTES:])


class Hello(NamedTuple):
    """Who is speaking on a connection, and the challenge it answered."""

    address: Address
    challenge: bytes


def encode_hello(address: Address, challenge: bytes) -> bytes:
    """The payload of a hello frame: who is speaking, on the connection of this challenge."""
    host, port = address
    return msgpack.packb([_HELLO_MAGIC, STREAM_VERSION, host, port, challenge])


def decode_hello(payload: bytes) -> Hello:
    """The address and challenge a hello declares; raises DecodeError (VersionError)."""
    try:
        value = msgpack.unpackb(
            payload,
            raw=False,
            max_str_len=64,
            max_bin_len=CHALLENGE_BYTES,
            max_array_len=5,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise DecodeError(f"malformed hello: {exc}") from None
    if not (isinstance(value, list) and len(value) >= 2 and value[0] == _HELLO_MAGIC):
        raise DecodeError("not a stream hello")
    if value[1] != STREAM_VERSION:
        raise VersionError(f"stream hello version {value[1]!r}, this node speaks {STREAM_VERSION}")
    if len(value) != 5 or not isinstance(value[4], bytes) or len(value[4]) != CHALLENGE_BYTES:
        raise DecodeError(f"not a version {STREAM_VERSION} stream hello")
    return Hello(parse_address((value[2], value[3])), value[4])


def frame_context(challenge: bytes, seq: int) -> bytes:
    """The associated data of the `seq`-th message frame (from 0) on a connection."""
    return _FRAME_CONTEXT + challenge + seq.to_bytes(8, "big")


def parse_address(value: object) -> Address:
    """A canonical (ip literal, port) pair; raises DecodeError for anything else."""
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise DecodeError("an address is a (host, port) pair")
    host, port = value
    if not isinstance(host, str) or type(port) is not int or not 0 < port < 65536:
        raise DecodeError(f"invalid address {value!r}")
    try:
        return (str(ipaddress.ip_address(host)), port)
    except ValueError:
        raise DecodeError(f"address host must be an IP literal, got {host!r}") from None


def is_wildcard(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified
