"""Shrink a failing key's history to a counterexample a person can read.

Two reductions, each sound (the result is still not linearizable, so it still
proves the whole history is not):

1. Cut the history at the first event after which it cannot be linearized.
   Operations running at the cut become pending with unknown outcome. Any
   linearization of the whole history restricted to the operations invoked
   before the cut is one of the prefix (pending operations accept any state),
   so a failing prefix proves the whole fails; and adding an invocation
   never breaks a linearizable prefix, so the cut falls just after a
   completion: that operation is the culprit.
2. Leave out pure operations (reads, failed compares) that the failure does
   not need: a linearization of a history restricts to one of any of its
   subsets that drops only operations which never change the state.

Both run inside the check's budget; when it runs out, the smallest history
verified so far is kept.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from swarmnode.check.history import UNKNOWN, Operation
from swarmnode.check.model import Model
from swarmnode.check.search import Budget, search

if TYPE_CHECKING:
    from swarmnode.check.checker import Counterexample


def _pending(op: Operation) -> Operation:
    return dataclasses.replace(op, output=UNKNOWN, ret=math.inf, ret_time=None, ret_line=None)


def prefix(ops: list[Operation], events: list[tuple[float, int, int]], cut: int) -> list[Operation]:
    """The operations invoked among the first `cut` events; those not yet returned pending."""
    returned = {i for _, kind, i in events[:cut] if kind == 1}
    invoked = [i for _, kind, i in events[:cut] if kind == 0]
    return [ops[i] if i in returned else _pending(ops[i]) for i in invoked]


def shrink(cx: Counterexample, model: Model, budget: Budget) -> Counterexample:
    ops = cx.operations
    events = sorted(
        [(op.call, 0, i) for i, op in enumerate(ops)]
        + [(op.ret, 1, i) for i, op in enumerate(ops) if op.completed]
    )

    def fails(candidate: list[Operation]) -> bool | None:
        kept = [op for op in candidate if not (op.output is UNKNOWN and model.pure(op))]
        found = search(kept, model, budget)
        return None if found.linearizable is None else not found.linearizable

    # 1. The shortest failing prefix: prefixes only fail from some cut on.
    good, bad = 0, len(events)
    while bad - good > 1:
        mid = (good + bad) // 2
        verdict = fails(prefix(ops, events, mid))
        if verdict is None:
            return cx
        if verdict:
            bad = mid
        else:
            good = mid
    _, kind, culprit_index = events[bad - 1]
    assert kind == 1, "a prefix can only start failing at a completion"
    culprit = ops[culprit_index]
    current = [
        op for op in prefix(ops, events, bad) if not (op.output is UNKNOWN and model.pure(op))
    ]

    # 2. Leave out the pure operations the failure does not need, halves first.
    candidates = [op for op in current if model.pure(op) and op.id != culprit.id]
    chunks = [candidates] if candidates else []
    while chunks:
        chunk = chunks.pop()
        gone = {op.id for op in chunk}
        trial = [op for op in current if op.id not in gone]
        verdict = fails(trial)
        if verdict is None:
            break
        if verdict:
            current = trial
        elif len(chunk) > 1:
            half = len(chunk) // 2
            chunks += [chunk[half:], chunk[:half]]

    others = [op for op in current if op.id != culprit.id]
    if not model.pure(culprit):
        others.append(_pending(culprit))
    legal = search(others, model, budget)
    return dataclasses.replace(
        cx,
        operations=current,
        shrunk=True,
        culprit=culprit,
        linearization=legal.linearization,
    )
