"""The settings every member of a cluster must share, and how two nodes compare them.

Some settings are not a node's own business: two nodes whose Merkle trees have
different shapes can never finish an anti-entropy round; with different tombstone
graces one collects a tombstone the other still needs and deleted entries come back;
with different clock offsets one accepts timestamps the other refuses as skew, and
their states diverge for good. A node therefore carries these settings in every alive
fact about a member (field "c" of the fact, see `messages.py`), and a node refuses to
take as a member anyone whose settings differ from its own.

On the wire the settings are a list of small integers, `[protocol, tree fanout, tree
depth, tombstone grace in ms, max clock offset in ms]` (about a dozen bytes): the
protocol version first, so a later version may change what follows. A fact without
the list comes from a node of protocol version 1, which predates the check.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL_VERSION = 2
"""Version of the gossip protocol; 2 added the settings list to alive facts."""
UNVERSIONED = 1
"""What a fact without a settings list is taken for: a node from before version 2."""


@dataclass(frozen=True)
class Mismatch:
    """One setting on which a peer disagrees with this node."""

    setting: str
    ours: int | float
    theirs: int | float

    def describe(self) -> str:
        return f"setting={self.setting} ours={self.ours:g} theirs={self.theirs:g}"


@dataclass(frozen=True)
class ClusterSettings:
    """What this node requires every member to share (defaults: the `lan` profile's)."""

    tree_fanout: int = 16
    tree_depth: int = 4
    tombstone_grace_ms: int = 24 * 3600 * 1000
    max_clock_offset_ms: int = 500
    protocol: int = PROTOCOL_VERSION

    def to_wire(self) -> tuple[int, ...]:
        return (
            self.protocol,
            self.tree_fanout,
            self.tree_depth,
            self.tombstone_grace_ms,
            self.max_clock_offset_ms,
        )

    def mismatches(self, theirs: tuple[int, ...] | None) -> list[Mismatch]:
        """How a peer's settings (as carried on the wire) differ from these; [] if equal.

        A different protocol version is reported alone: the rest of the list may mean
        something else in another version.
        """
        ours = self.to_wire()
        if theirs == ours:
            return []
        if theirs is None or theirs[0] != self.protocol:
            version = UNVERSIONED if theirs is None else theirs[0]
            return [Mismatch("protocol_version", self.protocol, version)]
        if len(theirs) != len(ours):
            return [Mismatch("settings_length", len(ours), len(theirs))]
        found = []
        for (name, scale), mine, other in zip(_NAMES, ours[1:], theirs[1:], strict=True):
            if mine != other:
                found.append(Mismatch(name, mine / scale, other / scale))
        return found


_NAMES = (
    ("antientropy.tree_fanout", 1),
    ("antientropy.tree_depth", 1),
    ("store.tombstone_grace", 1000),
    ("store.max_clock_offset_ms", 1),
)
"""The configuration key of each wire position after the version, and the divisor that
turns the wire value into the unit of that key (the grace is configured in seconds)."""
