"""Lifeguard's local health awareness.

A node that misses acks may be the one at fault (overloaded, paused, losing
packets on its own link). It then probes more slowly and waits longer for
answers, so it stops raising suspicions against healthy members until its own
acks come back.
"""

from __future__ import annotations


class Awareness:
    """A score in [0, max_multiplier - 1]; timers are stretched by (score + 1)."""

    def __init__(self, max_multiplier: int) -> None:
        assert max_multiplier >= 1
        self._limit = max_multiplier - 1
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(self._limit, max(0, self.score + delta))

    def scale(self, seconds: float) -> float:
        return seconds * (self.score + 1)
