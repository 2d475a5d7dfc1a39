"""The deltas a node saw lately, so their copies stop before the store.

Gossip sends every delta `retransmit_mult` times and every node that finds it
new forwards it as often, so a node receives each write several times over.
Each copy used to become a merge in the write batch: read the entry from
LMDB, join, find nothing changed. Under a busy writer those duplicate merges
cost the writer more than its own puts. A copy whose exact bytes this node
wrote or received within the last `window` seconds is dropped at once
instead.

Dropping a copy is always safe: merging is a join, so the first copy left
the state at or above it, and a copy kept away from the store can bring
nothing back. The window is short so that much later copies (a network that
held a datagram back) still reach the merge rules, which judge them by age.
Sans-IO: the caller passes `now`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

Delta = tuple[str, str, bytes]
"""(namespace, key, delta bytes) as gossip carries it."""


class RecentDeltas:
    """Deltas seen in the last `window` seconds, at most `capacity` of them (oldest forgotten
    first)."""

    def __init__(self, window: float, capacity: int) -> None:
        if window < 0 or capacity < 0:
            raise ValueError("window and capacity must not be negative")
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[Delta, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, now: float, delta: Delta) -> None:
        """`delta` left or reached this node now (a local write's delta, for one)."""
        self.split(now, (delta,))

    def split(self, now: float, deltas: Sequence[Delta]) -> tuple[list[Delta], list[Delta]]:
        """`deltas` (a gossip message's, in order) as (those not seen within the window, now
        remembered; the copies of deltas seen). A delta twice in `deltas` is new only the
        first time; with a window of 0 every delta is new. One pass per message: the
        window moves on once, not per delta."""
        if not self.window or not self.capacity:
            return list(deltas), []
        self._expire(now)
        seen = self._seen
        new = []
        copies = []
        for delta in deltas:
            if delta in seen:
                copies.append(delta)
            else:
                seen[delta] = now
                new.append(delta)
        while len(seen) > self.capacity:
            seen.popitem(last=False)
        return new, copies

    def forget(self, delta: Delta) -> None:
        """Let the next copy of `delta` through (its merge failed and may succeed later)."""
        self._seen.pop(delta, None)

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        seen = self._seen
        while seen:
            oldest = next(iter(seen.values()))
            if oldest > horizon:
                return
            seen.popitem(last=False)
