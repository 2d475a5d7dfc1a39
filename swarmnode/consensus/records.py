"""The records Raft keeps durably: log entries, hard state, configurations, snapshots.

They are small immutable values shared by the algorithm (`raft.py`), its
storage (`storage.py`) and the wire codec (`messages.py`). A configuration
change travels inside an entry of kind CONF as a msgpack map, decoded here
with the same strictness as a network message, because entries arrive from
peers too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from swarmnode.errors import DecodeError
from swarmnode.membership.messages import node_id as check_node_id

MAX_CONF_NODES = 1024
"""Voters plus learners one configuration may name; far above the five voters and few
learners the policy keeps, and small enough that a hostile map cannot cost much."""


class EntryKind(IntEnum):
    NORMAL = 0
    """Opaque bytes for the state machine; empty data is the no-op a new leader appends."""
    CONF = 1
    """A configuration change (`ConfChange`), applied by Raft itself once committed."""


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    kind: EntryKind
    data: bytes

    @property
    def size(self) -> int:
        """What the entry counts for against byte bounds (its data plus a fixed overhead)."""
        return len(self.data) + 16


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it leaves the node: the
    current term, the vote cast in it (None: none), and the highest known commit index."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """The group's configuration: voters count in elections and commit quorums; learners
    only receive the log. A node is in at most one of the two sets."""

    voters: frozenset[str] = frozenset()
    learners: frozenset[str] = frozenset()

    def members(self) -> frozenset[str]:
        return self.voters | self.learners

    def quorum(self) -> int:
        return len(self.voters) // 2 + 1


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One change of configuration. `op` is one of:
    init         the first configuration of a new group (`voters`), written at bootstrap
    add_voter    make `node` a voter (new, or promote a learner)
    add_learner  make `node` a learner (new, or demote a voter)
    remove       drop `node` from the configuration
    """

    op: str
    node: str | None = None
    voters: tuple[str, ...] = ()

    def apply(self, conf: ConfState) -> ConfState:
        """The configuration after this change. Applying a change twice is harmless."""
        if self.op == "init":
            return ConfState(frozenset(self.voters), frozenset())
        assert self.node is not None
        voters = set(conf.voters)
        learners = set(conf.learners)
        voters.discard(self.node)
        learners.discard(self.node)
        if self.op == "add_voter":
            voters.add(self.node)
        elif self.op == "add_learner":
            learners.add(self.node)
        return ConfState(frozenset(voters), frozenset(learners))


CONF_OPS = ("init", "add_voter", "add_learner", "remove")


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where a snapshot ends: the last index and term it covers and the configuration
    in force at that index."""

    index: int = 0
    term: int = 0
    conf: ConfState = ConfState()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state machine image (opaque bytes from the machine) and where in the log it ends."""

    meta: SnapshotMeta = SnapshotMeta()
    data: bytes = b""


def encode_conf_change(change: ConfChange) -> bytes:
    if change.op == "init":
        return msgpack.packb({"op": "init", "voters": sorted(change.voters)})
    return msgpack.packb({"op": change.op, "node": change.node})


def decode_conf_change(data: bytes) -> ConfChange:
    """Check the data of a CONF entry; raises `DecodeError` for anything malformed."""
    try:
        wire = msgpack.unpackb(data, raw=False, max_array_len=MAX_CONF_NODES, max_map_len=4)
    except Exception as exc:
        raise DecodeError(f"conf change is not msgpack: {exc}") from None
    if not isinstance(wire, dict) or set(wire) - {"op", "node", "voters"}:
        raise DecodeError("conf change must be a map of op, node, voters")
    op = wire.get("op")
    if op not in CONF_OPS:
        raise DecodeError(f"conf change op must be one of {CONF_OPS}")
    if op == "init":
        return ConfChange("init", None, tuple(node_list(wire.get("voters"), "voters", 1)))
    if "voters" in wire:
        raise DecodeError(f"conf change {op} takes no voters")
    return ConfChange(op, check_node_id(wire.get("node"), "node"))


def node_list(value: Any, name: str, minimum: int = 0) -> list[str]:
    """A list of distinct node ids, at most `MAX_CONF_NODES` of them."""
    if not isinstance(value, list | tuple) or not minimum <= len(value) <= MAX_CONF_NODES:
        raise DecodeError(f"{name}: must be a list of {minimum}..{MAX_CONF_NODES} node ids")
    nodes = [check_node_id(item, name) for item in value]
    if len(set(nodes)) != len(nodes):
        raise DecodeError(f"{name}: node ids must be distinct")
    return nodes
