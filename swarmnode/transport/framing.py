"""Stream framing for gossip messages too large for one datagram.

A stream is a TCP connection from one node to another's gossip port. Each frame
is a 4-byte big-endian length followed by an envelope (sealed or plaintext,
exactly as for datagrams). The receiver answers every accepted frame with one
ACK byte, so the sender learns that the frame was authenticated, decoded and
handed to the node, and can count a failure instead of losing data silently.

The first frame on a connection is a *hello* declaring the sender's gossip
address, because the TCP source port is ephemeral and would name nobody. The
hello is small and capped at HELLO_MAX_FRAME, so a peer without the cluster key
can make the receiver buffer at most that much before being cut off; only after
an authenticated hello does the receiver read frames up to the large stream cap.
A hello that declares a wildcard host (a node bound to 0.0.0.0) is completed
with the connection's source address.
"""

from __future__ import annotations

import ipaddress

import msgpack

from swarmnode.errors import DecodeError
from swarmnode.sansio import Address

FRAME_HEADER_BYTES = 4
HELLO_MAX_FRAME = 512
ACK = b"\x06"
_HELLO_MAGIC = "swarmnode-stream"
_HELLO_VERSION = 1


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


def encode_hello(address: Address) -> bytes:
    """The payload of a hello frame: who is speaking on this connection."""
    host, port = address
    return msgpack.packb([_HELLO_MAGIC, _HELLO_VERSION, host, port])


def decode_hello(payload: bytes) -> Address:
    """The gossip address a hello declares; raises DecodeError."""
    try:
        value = msgpack.unpackb(
            payload,
            raw=False,
            max_str_len=64,
            max_bin_len=0,
            max_array_len=4,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise DecodeError(f"malformed hello: {exc}") from None
    if not (
        isinstance(value, list) and len(value) == 4 and value[:2] == [_HELLO_MAGIC, _HELLO_VERSION]
    ):
        raise DecodeError("not a version 1 stream hello")
    return parse_address((value[2], value[3]))


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
