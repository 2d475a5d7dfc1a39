"""The Wing–Gong / Lowe search for a linearization of one sub-history.

Completed operations form a doubly linked list of call and return events in
real-time order. The search walks it from the front: at a call it tries to
linearize that operation now (apply the model's step; if the output is
possible, lift the call and its return out of the list and start again from
the front); at a return it has met an operation that must already have been
linearized, so it backtracks: the last linearized operation goes back in and
the walk continues after it. The history is linearizable iff the list empties.

Lowe ("Testing for linearizability", 2017, section 4) makes this practical
with a cache of configurations already explored, (set of linearized
operations, model state): reaching one twice cannot lead anywhere new, so the
search prunes it. The set is a Python int used as a bitset.

Operations that never completed (outcome unknown) have a call in the list
but no return: one may be linearized at any point after its invocation and
need never be, because one left over took effect after everything else, or
never, which nothing observed. So the search succeeds as soon as every
completed operation is linearized. And two pending operations with the same
input are interchangeable (neither ever returns), so the earlier-invoked one
always goes first: k identical timed-out writes cost k + 1 configurations
instead of 2^k.

A `Budget` bounds the search in steps, seconds and cache size; when it runs
out the answer is "unknown" (None), never a guess.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from swarmnode.check.history import Operation
from swarmnode.check.model import Model

#: How many search steps pass between two looks at the clock and the cache size.
CLOCK_EVERY = 4096

#: Default bound on one search's cache. A configuration costs about 180 bytes
#: on a key with 700 operations (more on longer keys), so this keeps a search
#: near 1 GB; a search that needs more ends "unknown".
MAX_CONFIGURATIONS = 5_000_000


class Budget:
    """Steps and seconds a whole check may spend, shared by every search it runs."""

    def __init__(
        self,
        seconds: float | None = None,
        max_steps: int | None = None,
        max_configurations: int | None = MAX_CONFIGURATIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._deadline = None if seconds is None else clock() + seconds
        self._max_steps = max_steps
        #: Per search: its cache of configurations is what holds memory.
        self.max_configurations = max_configurations
        self.steps = 0

    def charge(self, steps: int) -> bool:
        """Record `steps` more steps; False when the budget is spent."""
        self.steps += steps
        if self._max_steps is not None and self.steps > self._max_steps:
            return False
        return self._deadline is None or self._clock() < self._deadline

    @property
    def exhausted(self) -> bool:
        return not self.charge(0)


@dataclass(frozen=True)
class SearchResult:
    """`linearizable` is None when the budget ran out before an answer."""

    linearizable: bool | None
    #: The operations in a legal order, when the sub-history is linearizable.
    linearization: list[Operation] | None
    steps: int
    configurations: int


def _twins(order: Sequence[Operation]) -> list[int]:
    """For each pending operation, the bit of the previous pending one with an equal input."""
    last: dict[object, int] = {}
    twins = []
    for i, op in enumerate(order):
        twin = 0
        if not op.completed:
            try:
                twin = last.get(op.input, 0)
                last[op.input] = 1 << i
            except TypeError:  # an unhashable input has no twins
                twin = 0
        twins.append(twin)
    return twins


def search(ops: Sequence[Operation], model: Model, budget: Budget) -> SearchResult:
    """Look for a linearization of `ops` (one partition) under `model`."""
    order = sorted(ops, key=lambda op: (op.call, not op.completed))
    remaining = sum(op.completed for op in order)
    # Nodes 1.. are the events in order (calls of every operation, returns of
    # the completed ones), 0 is the head and `tail` the tail. Ties put calls
    # first: such operations overlap.
    events = sorted(
        [(op.call, 0, i) for i, op in enumerate(order)]
        + [(op.ret, 1, i) for i, op in enumerate(order) if op.completed]
    )
    tail = len(events) + 1
    nxt = [*range(1, tail + 1), tail]
    prv = [0, *range(0, tail)]
    op_of = [0] * (tail + 1)
    # A completed operation's call: its return node; a pending one's call: -1; a return: 0.
    match = [0] * (tail + 1)
    return_node: dict[int, int] = {}
    for node in range(tail - 1, 0, -1):
        _, kind, i = events[node - 1]
        op_of[node] = i
        if kind == 1:
            return_node[i] = node
        else:
            match[node] = return_node.get(i, -1)
    twin = _twins(order)
    inputs = [op.input for op in order]
    outputs = [op.output for op in order]
    bit = [1 << i for i in range(len(order))]
    step = model.step

    state: Any = model.init()
    linearized = 0
    cache: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = []
    max_configurations = budget.max_configurations or math.inf
    steps = 0
    e = nxt[0]
    while remaining:
        steps += 1
        if steps % CLOCK_EVERY == 0 and (
            not budget.charge(CLOCK_EVERY) or len(cache) > max_configurations
        ):
            return SearchResult(None, None, steps, len(cache))
        r = match[e]
        if r:
            i = op_of[e]
            if r > 0 or not twin[i] or linearized & twin[i]:
                ok, new = step(state, inputs[i], outputs[i])
                if ok:
                    bits = linearized | bit[i]
                    config = (bits, new)
                    if config not in cache:
                        cache.add(config)
                        stack.append((e, state))
                        state = new
                        linearized = bits
                        # Lift the call and its return, if any, out of the list.
                        nxt[prv[e]] = nxt[e]
                        prv[nxt[e]] = prv[e]
                        if r > 0:
                            nxt[prv[r]] = nxt[r]
                            prv[nxt[r]] = prv[r]
                            remaining -= 1
                        e = nxt[0]
                        continue
            e = nxt[e]
            continue
        # A return whose operation is not linearized yet: undo the last choice.
        if not stack:
            budget.charge(steps % CLOCK_EVERY)
            return SearchResult(False, None, steps, len(cache))
        e, state = stack.pop()
        linearized ^= bit[op_of[e]]
        r = match[e]
        if r > 0:
            prv[nxt[r]] = r
            nxt[prv[r]] = r
            remaining += 1
        prv[nxt[e]] = e
        nxt[prv[e]] = e
        e = nxt[e]
    budget.charge(steps % CLOCK_EVERY)
    return SearchResult(True, [order[op_of[node]] for node, _ in stack], steps, len(cache))
