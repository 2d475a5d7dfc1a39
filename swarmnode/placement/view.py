"""The member list placement follows, settled from membership.

Membership changes all the time at the edges: a member is suspected and
refutes, a node starts and learns the others one push-pull at a time. Moving
partitions on every such change would move data back and forth. So placement
follows a *settled view*: the members that are alive or suspect, plus members
dead for less than `dead_grace` (their partitions wait for them, served by the
other owners, with hints for writes), minus members that left (they said so).
A new candidate list becomes the view only once it has held for `settle`
seconds. Every node derives the same view from the same membership, so they
agree on owners once membership has spread.

Sans-IO: fed membership snapshots and time, it answers with the new view.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmnode.membership.state import MemberInfo, MemberState
from swarmnode.placement.config import PlacementConfig

View = tuple[str, ...]
"""Member ids, sorted."""


class ViewTracker:
    def __init__(
        self, self_id: str, config: PlacementConfig, now: float, previous: View | None = None
    ) -> None:
        """`previous` is the view this node settled on before it restarted (None: never)."""
        self.self_id = self_id
        self.config = config
        self.view: View | None = previous
        self._candidate: View = (self_id,)
        self._candidate_since = now
        self._expiries: list[float] = []

    def observe(self, now: float, members: Iterable[MemberInfo]) -> None:
        """Membership as it is now (after any member event)."""
        grace = self.config.dead_grace
        ids = {self.self_id}
        expiries = []
        for m in members:
            if m.state.live:
                ids.add(m.node_id)
            elif m.state is MemberState.DEAD and now - m.since < grace:
                ids.add(m.node_id)
                expiries.append(m.since + grace)
        self._expiries = expiries
        candidate = tuple(sorted(ids))
        if candidate != self._candidate:
            self._candidate = candidate
            self._candidate_since = now

    @property
    def candidate(self) -> View:
        """The member list as membership has it now (not yet settled)."""
        return self._candidate

    def next_deadline(self) -> float | None:
        """When `tick` may change something: a candidate settles, or a dead member's grace
        ends."""
        due = list(self._expiries)
        if self._candidate != self.view:
            due.append(self._candidate_since + self.config.settle)
        return min(due, default=None)

    def needs_observe(self, now: float) -> bool:
        """Whether a dead member's grace has ended since the last `observe`."""
        return any(now >= e for e in self._expiries)

    def tick(self, now: float) -> View | None:
        """The new settled view if it changed now, else None."""
        if self._candidate == self.view or now < self._candidate_since + self.config.settle:
            return None
        self.view = self._candidate
        return self.view
