"""The sequential specification a history is checked against, as a small protocol.

A model is a deterministic state machine over hashable states: the search
memoises (linearized operations, state) pairs, so states must hash and compare
by value. `partition` splits a history into independent sub-histories (one per
key for a register store); by P-compositionality (Herlihy and Wing; Horn and
Kroening) a history is linearizable iff each part is, and checking small parts
is exponentially cheaper than checking their union.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol

from swarmnode.check.history import Operation


class Model(Protocol):
    """What the checker needs to know about an object's sequential behaviour."""

    name: str
    #: The `f` values this model understands; readers count and skip the rest.
    functions: frozenset[str]

    def init(self) -> Hashable:
        """The state before any operation."""
        ...

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        """Apply one operation: (whether `output` is possible from `state`, the next state).

        `output` may be `UNKNOWN`: the step must then accept any outcome the
        operation could have had from `state`.
        """
        ...

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        """Independent sub-histories, by key; each is checked on its own."""
        ...

    def pure(self, op: Operation) -> bool:
        """True when `op` leaves every state as it was (a read, a compare that failed).

        Such an operation can be dropped without hiding a violation, so the
        checker drops the ones with unknown outcomes before searching and the
        explanation drops any it does not need.
        """
        ...

    def describe(self, op: Operation) -> str:
        """One readable line for the operation: its function, input and output."""
        ...

    def describe_state(self, state: Any) -> str:
        """The state as a reader would write it."""
        ...
