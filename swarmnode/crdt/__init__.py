"""Pure CRDT types: no IO, no clock, no global randomness (see docs/ARCHITECTURE.md)."""

from swarmnode.crdt.causal import CausalContext, Dot
from swarmnode.crdt.codec import decode_entry, encode_entry
from swarmnode.crdt.counter import PNCounter
from swarmnode.crdt.entry import COUNTER, REGISTER, SET, Entry
from swarmnode.crdt.hlc import ClockSkewError, HybridLogicalClock, make_ts, wall_ms
from swarmnode.crdt.lww import LWWRegister
from swarmnode.crdt.mvreg import MVRegister, Version
from swarmnode.crdt.orset import ORSet

__all__ = [
    "COUNTER",
    "REGISTER",
    "SET",
    "CausalContext",
    "ClockSkewError",
    "Dot",
    "Entry",
    "HybridLogicalClock",
    "LWWRegister",
    "MVRegister",
    "ORSet",
    "PNCounter",
    "Version",
    "decode_entry",
    "encode_entry",
    "make_ts",
    "wall_ms",
]
