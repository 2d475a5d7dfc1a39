"""Hybrid logical clock (Kulkarni et al., 2014).

A timestamp is one int: milliseconds of physical time in the high bits and a
16-bit logical counter in the low bits. One int orders, compares and encodes
cheaply, and its high part is a wall-clock time, which is what TTL expiry is
computed from, so every replica expires an entry at the same moment.

The clock never reads a clock itself: callers pass physical time in, which is
what lets the simulator run it on virtual time.
"""

from __future__ import annotations

LOGICAL_BITS = 16
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
MAX_TIMESTAMP = (1 << 63) - 1


def make_ts(wall_ms: int, logical: int = 0) -> int:
    return (wall_ms << LOGICAL_BITS) | logical


def wall_ms(ts: int) -> int:
    """The physical part of a timestamp, in milliseconds since the epoch."""
    return ts >> LOGICAL_BITS


def logical(ts: int) -> int:
    return ts & LOGICAL_MASK


class ClockSkewError(ValueError):
    """A remote timestamp is further ahead of local physical time than the max offset.

    Adopting it would drag this node's clock (and every later write's expiry)
    into the future; the caller counts and rejects the message instead.
    """

    def __init__(self, remote_ms: int, local_ms: int, max_offset_ms: int) -> None:
        super().__init__(
            f"remote clock {remote_ms - local_ms} ms ahead of local time "
            f"(max offset {max_offset_ms} ms)"
        )
        self.ahead_ms = remote_ms - local_ms


class HybridLogicalClock:
    """Timestamps that respect causality and stay close to physical time."""

    def __init__(self, max_offset_ms: int = 500, last: int = 0) -> None:
        if max_offset_ms < 0:
            raise ValueError("max_offset_ms must be >= 0")
        self.max_offset_ms = max_offset_ms
        self.last = last

    def now(self, physical_ms: int) -> int:
        """A timestamp for a local event, strictly greater than every one issued or seen."""
        last_wall = wall_ms(self.last)
        ts = make_ts(physical_ms) if physical_ms > last_wall else self._successor(self.last)
        self.last = ts
        return ts

    def check(self, remote: int, physical_ms: int) -> None:
        """Raise ClockSkewError if `remote` is too far ahead of `physical_ms`."""
        remote_wall = wall_ms(remote)
        if remote_wall - physical_ms > self.max_offset_ms:
            raise ClockSkewError(remote_wall, physical_ms, self.max_offset_ms)

    def update(self, remote: int, physical_ms: int) -> int:
        """Merge a timestamp received from a peer; returns the new local timestamp.

        Raises ClockSkewError (and leaves the clock untouched) when the remote
        timestamp is beyond the max offset.
        """
        self.check(remote, physical_ms)
        newest = max(self.last, remote)
        ts = make_ts(physical_ms) if physical_ms > wall_ms(newest) else self._successor(newest)
        self.last = ts
        return ts

    @staticmethod
    def _successor(ts: int) -> int:
        # A full logical counter rolls into the next millisecond: the clock runs
        # 1 ms ahead for a moment rather than ever repeating a timestamp.
        if logical(ts) == LOGICAL_MASK:
            return make_ts(wall_ms(ts) + 1)
        return ts + 1
