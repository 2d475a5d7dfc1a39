"""When a claim's lease has lapsed, as the leader sees it: proposals to free the key.

The state machine cannot read a clock, so leases end by a committed `expire`
entry that the leader proposes (etcd's lessor does the same). This class is
the leader's side, sans-IO: fed the leader's monotonic time (`now`, seconds)
and the lease changes of the apply stream, it says which `expire` commands to
propose.

Why a client can trust its lease: a client counts its lease from the moment it
*sent* the claim or renewal, so it stops using the key at send + lease. The
leader counts from when it applied the entry, which is later, so its deadline
(apply + lease + `margin`) is never earlier, as long as the two clocks run at
rates that differ by less than margin / lease.

A new leader does not know when the old one granted or renewed each lease. So
it treats every lease in the machine as renewed at its own election (the
remaining time is the full lease): every grant the old leader made was
committed, hence applied here, before this election or after it, and in both
cases its deadline lies after the client's. So a new leader never frees a key
before every lease an old leader could have granted has lapsed; the price is
that a lapsed lease can outlive a leader change by up to one lease.

An `expire` that is lost (dropped proposal, leader change) is proposed again
after `retry` seconds while this node still leads; one that arrives after the
lease was renewed or granted again frees nothing (the machine checks the
token and the renewal's index).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from swarmnode.consensus.machine import LeaseChange, LeaseGranted, expire


class LeaseKeeper:
    def __init__(self, margin: float, retry: float = 1.0) -> None:
        if margin < 0 or retry <= 0:
            raise ValueError("margin must be >= 0 and retry > 0 seconds")
        self.margin = margin
        self.retry = retry
        self.leading = False
        self._deadlines: dict[tuple[str, str], tuple[float, LeaseGranted]] = {}
        self._heap: list[tuple[float, str, str]] = []

    def become_leader(self, now: float, leases: Iterable[LeaseGranted]) -> None:
        """This node was elected: every lease in force counts as renewed now."""
        self.leading = True
        self._deadlines.clear()
        self._heap.clear()
        for lease in leases:
            self._track(now, lease)

    def become_follower(self) -> None:
        self.leading = False
        self._deadlines.clear()
        self._heap.clear()

    def observe(self, now: float, change: LeaseChange) -> None:
        """A lease change this node just applied."""
        if not self.leading:
            return
        if isinstance(change, LeaseGranted):
            self._track(now, change)
        else:
            self._deadlines.pop((change.ns, change.key), None)

    def due(self, now: float) -> list[bytes]:
        """`expire` commands to propose now; each is proposed again after `retry` seconds
        until the lease is seen freed or renewed."""
        out: list[bytes] = []
        while self._heap and self._heap[0][0] <= now:
            deadline, ns, key = heapq.heappop(self._heap)
            tracked = self._deadlines.get((ns, key))
            if tracked is None or tracked[0] != deadline:
                continue
            lease = tracked[1]
            out.append(expire(ns, key, lease.token, lease.lease_index))
            self._schedule(now + self.retry, lease)
        return out

    def next_deadline(self) -> float | None:
        """When `due` will next have something, for runtimes that sleep until then."""
        while self._heap:
            deadline, ns, key = self._heap[0]
            tracked = self._deadlines.get((ns, key))
            if tracked is not None and tracked[0] == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def _track(self, now: float, lease: LeaseGranted) -> None:
        self._schedule(now + lease.lease_ms / 1000.0 + self.margin, lease)

    def _schedule(self, deadline: float, lease: LeaseGranted) -> None:
        self._deadlines[(lease.ns, lease.key)] = (deadline, lease)
        heapq.heappush(self._heap, (deadline, lease.ns, lease.key))
