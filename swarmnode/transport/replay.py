"""The replay window: each sealed datagram is accepted at most once, and only while fresh.

Every sealed envelope carries the sender's wall clock (`sent ms`) and a random
96-bit nonce, both authenticated. A receiver accepts a datagram only if

- its `sent ms` lies within ±window of the receiver's own clock, and above the
  *floor* (below), and
- its nonce is not among those it accepted before.

Accepted nonces are remembered until they fall out of the window. Memory is
bounded by `capacity`: when the cache is full, the nonce with the oldest
`sent ms` is forgotten and the floor rises to that time, so everything stamped
at or before it is refused from then on. The same happens when a nonce expires
through age. Hence the invariant: *every nonce ever accepted is either still
remembered or stamped at or below the floor*; and since a nonce and its stamp
are authenticated together, a replay repeats both, so a datagram is never
accepted twice, whatever arrives and however the receiver's clock moves.
Under a flood the cost falls on freshness (the effective window shrinks to
`capacity` datagrams), never on safety.

Why timestamps and a nonce cache rather than per-sender sequence windows (as
IPsec and DTLS do):

- A sequence window needs an authenticated sender identity and per-sender
  state; a restarting sender needs an epoch; each key needs its own window.
  Here there is no per-sender state at all: a restart of the sender (fresh
  random nonces) or a key rotation (nonces do not depend on the key) changes
  nothing.
- A sequence window alone bounds nothing in time: a receiver that restarted has
  no window for a sender, and would accept a datagram captured weeks ago, which
  is exactly the attack that resurrects deleted entries after their tombstones
  are collected. A timestamp bounds the age of anything accepted, across
  restarts, to the window.

What it costs: clocks must agree within the window (the store already refuses
timestamps more than `store.max_clock_offset_ms` ahead, so nodes must run NTP
anyway); the window must exceed that offset plus the worst delivery delay.
After a receiver restarts, its cache is empty, so a datagram sent to it within
the last window could be replayed once. That is harmless: every gossip message
is idempotent or ordered by incarnations over so short a time; the replay
attacks that matter (resurrection) need an age of `store.tombstone_grace`,
hours beyond any window.

This module is a sans-IO state machine: the caller passes the time in.
"""

from __future__ import annotations

import enum
import heapq


class Freshness(enum.Enum):
    """The verdict on one datagram."""

    FRESH = enum.auto()
    REPLAYED = enum.auto()
    TOO_OLD = enum.auto()
    TOO_NEW = enum.auto()


class ReplayWindow:
    """Accepts each (nonce, sent_ms) at most once, within ±window_ms of the given now."""

    def __init__(self, window_ms: int, capacity: int) -> None:
        if window_ms < 1 or capacity < 1:
            raise ValueError("window_ms and capacity must be positive")
        self.window_ms = window_ms
        self.capacity = capacity
        self.floor_ms = -1
        """Everything stamped at or before this is refused: the newest time forgotten."""
        self.evicted = 0
        """Nonces forgotten while still inside the window because the cache was full."""
        self._seen: set[bytes] = set()
        self._by_age: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, nonce: bytes, sent_ms: int, now_ms: int) -> Freshness:
        """Judge one authenticated datagram and remember it if it is fresh."""
        self._expire(now_ms - self.window_ms)
        if sent_ms > now_ms + self.window_ms:
            return Freshness.TOO_NEW
        if sent_ms < now_ms - self.window_ms or sent_ms <= self.floor_ms:
            return Freshness.TOO_OLD
        if nonce in self._seen:
            return Freshness.REPLAYED
        self._seen.add(nonce)
        heapq.heappush(self._by_age, (sent_ms, nonce))
        while len(self._seen) > self.capacity:
            self._forget()
            self.evicted += 1
        return Freshness.FRESH

    def _expire(self, oldest_ms: int) -> None:
        while self._by_age and self._by_age[0][0] < oldest_ms:
            self._forget()

    def _forget(self) -> None:
        sent_ms, nonce = heapq.heappop(self._by_age)
        self._seen.discard(nonce)
        self.floor_ms = max(self.floor_ms, sent_ms)
