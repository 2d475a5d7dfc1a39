"""What a leader knows of each follower, and how fast it may send to it (flow control).

A follower is in one of three states:

probe      the leader does not know where the follower's log matches its own; it
           sends one append and waits for the answer (or the next heartbeat
           response) before sending another, walking `next` back on rejections.
replicate  the logs match up to `match`; the leader streams appends without
           waiting, at most `max_inflight_appends` unacknowledged at a time.
snapshot   the entries the follower needs are compacted; the leader sends its
           snapshot, one chunk in flight at a time, and nothing else.

This is the shape of etcd-io/raft's tracker; heartbeats pace the retries, so a
lost message costs one heartbeat interval, never a stall.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class ProgressState(StrEnum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


STALL_ROUNDS = 2
"""Heartbeat responses in a row without `match` moving, while appends are outstanding,
after which a replicating follower is probed again: its in-flight appends were lost."""

SNAPSHOT_RETRY_ROUNDS = 2
"""Heartbeat rounds without an answer to a snapshot chunk after which it is sent again,
when the follower shows it is alive by answering a heartbeat."""


@dataclass
class Progress:
    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    inflight: deque[int] = field(default_factory=deque)
    """Last index of each append in flight (replicate state), oldest first."""
    recent_active: bool = True
    """Heard from since the last check-quorum round."""
    read_acked: int = 0
    """Highest ReadIndex round the follower has answered in this term."""
    commit_known: int = 0
    """The follower's commit index, from its latest heartbeat response."""
    sent_commit: int = 0
    """Highest commit index this follower was sent (and can use: at most what it holds)."""
    stalled: int = 0
    snap_index: int = 0
    snap_offset: int = 0
    snap_rounds: int = 0

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.snap_index + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflight.clear()
        self.stalled = 0

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.inflight.clear()
        self.stalled = 0

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.snap_index = index
        self.snap_offset = 0
        self.snap_rounds = 0
        self.inflight.clear()

    def is_paused(self, max_inflight: int) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflight) >= max_inflight
        return True

    def sent(self, last_index: int, count: int) -> None:
        """An append carrying `count` entries up to `last_index` was sent."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflight.append(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """The follower's log matches up to `index`; returns whether `match` moved."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
            self.stalled = 0
        self.next = max(self.next, index + 1)
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        return updated

    def maybe_decrease(self, rejected: int, match_hint: int) -> bool:
        """The append after `rejected` was refused; `match_hint` is the highest index that
        may still match. Returns False for a stale rejection."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True
