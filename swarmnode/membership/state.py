"""What one node knows about one member, and how two claims about it are ordered.

SWIM orders claims about a member by its incarnation number, which only the
member itself raises (to refute a suspicion). At equal incarnation the more
pessimistic claim wins, so suspicion spreads until the member answers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from swarmnode.sansio import Address


class MemberState(IntEnum):
    """The state of a member; the value is its code on the wire."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def live(self) -> bool:
        """Alive or suspect: still probed and still a peer to talk to."""
        return self in (MemberState.ALIVE, MemberState.SUSPECT)


@dataclass(frozen=True)
class MemberInfo:
    """A snapshot of one member, as `Membership.members()` reports it.

    `since` is the local time (the runtime's clock) at which the member entered
    its current state.
    """

    node_id: str
    addr: Address
    state: MemberState
    incarnation: int
    since: float
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
