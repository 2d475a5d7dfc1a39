"""Gossip transport: cluster keys, sealed envelopes, datagram packing, UDP and stream IO.

keyring, envelope, packing and framing are pure (bytes in, bytes out) so the
simulator can account for exactly the bytes a real node would send; replay
(the datagram replay window) and admission (who may hold an inbound stream and
how many bytes) are sans-IO state machines; endpoint and inbound are the
asyncio side that owns the sockets, tuned by config.
"""

from swarmnode.transport.config import TransportConfig
from swarmnode.transport.endpoint import (
    COUNTER_KEYS,
    GAUGE_KEYS,
    STAT_KEYS,
    GossipEndpoint,
    InsecureBindError,
    check_bind_allowed,
)
from swarmnode.transport.envelope import (
    PLAIN_OVERHEAD,
    SEALED_OVERHEAD,
    AuthenticationError,
    Opened,
    VersionError,
    envelope_overhead,
    open_envelope,
    seal_envelope,
)
from swarmnode.transport.keyring import ClusterKey, KeyFileError, Keyring, generate_key_file
from swarmnode.transport.packing import Packing, encode_message, pack_messages, unpack_datagram

__all__ = [
    "COUNTER_KEYS",
    "GAUGE_KEYS",
    "PLAIN_OVERHEAD",
    "SEALED_OVERHEAD",
    "STAT_KEYS",
    "AuthenticationError",
    "ClusterKey",
    "GossipEndpoint",
    "InsecureBindError",
    "KeyFileError",
    "Keyring",
    "Opened",
    "Packing",
    "TransportConfig",
    "VersionError",
    "check_bind_allowed",
    "encode_message",
    "envelope_overhead",
    "generate_key_file",
    "open_envelope",
    "pack_messages",
    "seal_envelope",
    "unpack_datagram",
]
