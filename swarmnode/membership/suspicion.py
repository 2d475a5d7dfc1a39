"""Lifeguard's suspicion: a timeout that shrinks as independent members confirm it.

A suspicion starts at its longest timeout. Each distinct member that also
fails to reach the suspect shortens it, on a log scale, toward the shortest
timeout, reached after `expected` confirmations. One slow or badly connected
prober therefore cannot get a healthy member declared dead quickly, while a
real failure that many members see is declared after the short timeout.
"""

from __future__ import annotations

import math


def suspicion_bounds(
    mult: int, max_mult: int, live: int, probe_interval: float
) -> tuple[float, float]:
    """(shortest, longest) suspicion timeout in seconds with `live` members (memberlist)."""
    shortest = mult * max(1.0, math.log10(max(1, live))) * probe_interval
    return shortest, shortest * max_mult


class Suspicion:
    """The timer of one suspected member at one incarnation."""

    def __init__(
        self, start: float, first: str, shortest: float, longest: float, expected: int
    ) -> None:
        assert 0 < shortest <= longest and expected >= 0
        self.start = start
        self.shortest = shortest
        self.longest = longest
        self.expected = expected
        self._confirmers: dict[str, None] = {first: None}
        self.deadline = start + (longest if expected > 0 else shortest)

    def confirm(self, by: str) -> bool:
        """Count `by` as one more independent confirmation; False if it already counted."""
        if by in self._confirmers or len(self._confirmers) > self.expected:
            return False
        self._confirmers[by] = None
        confirmations = len(self._confirmers) - 1
        fraction = math.log(confirmations + 1) / math.log(self.expected + 1)
        timeout = max(self.shortest, self.longest - fraction * (self.longest - self.shortest))
        self.deadline = self.start + timeout
        return True
