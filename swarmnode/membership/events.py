"""Changes of membership that a node reports to the layers above it.

Each is emitted once per change seen locally, never for the node itself, so a
consumer (the replication layer's peer list, `swarmnode members --watch`) can
mirror the member list from events alone; push-pull may also add members that
are already dead or left when first heard of, which emit nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.membership.compat import Mismatch
from swarmnode.sansio import Address


@dataclass(frozen=True)
class MemberEvent:
    node_id: str
    addr: Address
    incarnation: int


@dataclass(frozen=True)
class MemberJoined(MemberEvent):
    """A member never seen before (or forgotten after `dead_retention`) is alive."""


@dataclass(frozen=True)
class MemberAlive(MemberEvent):
    """A suspect, dead or left member is alive again (it refuted, or came back)."""


@dataclass(frozen=True)
class MemberSuspect(MemberEvent):
    """A member missed its probes; it is still a peer until the suspicion expires."""


@dataclass(frozen=True)
class MemberDead(MemberEvent):
    """A member failed (or was replaced by another node id at its address)."""


@dataclass(frozen=True)
class MemberLeft(MemberEvent):
    """A member said goodbye."""


@dataclass(frozen=True)
class MemberUpdated(MemberEvent):
    """An alive member changed its address or metadata."""


@dataclass(frozen=True)
class PeerRefused:
    """A node whose cluster settings differ from this node's was refused as a member.

    Not a `MemberEvent`: the peer never was, and never becomes, a member. Emitted once
    per disagreement (again only if the peer comes back with other values).
    """

    node_id: str
    addr: Address
    mismatches: tuple[Mismatch, ...]
