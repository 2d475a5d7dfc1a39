"""SWIM membership and failure detection (with Lifeguard), sans-IO."""

from swarmnode.membership.config import MembershipConfig
from swarmnode.membership.events import (
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberSuspect,
    MemberUpdated,
)
from swarmnode.membership.state import MemberInfo, MemberState
from swarmnode.membership.swim import Membership

__all__ = [
    "MemberAlive",
    "MemberDead",
    "MemberEvent",
    "MemberInfo",
    "MemberJoined",
    "MemberLeft",
    "MemberState",
    "MemberSuspect",
    "MemberUpdated",
    "Membership",
    "MembershipConfig",
]
