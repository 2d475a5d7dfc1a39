"""Check a whole history: drop what cannot matter, split by key, search each part.

Parts are searched smallest first and the check stops at the first part that
cannot be linearized, so the counterexample always comes from the smallest
failing key. A part whose search runs out of budget makes the verdict
"unknown" unless another part fails outright.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swarmnode.check.history import UNKNOWN, History, Operation
from swarmnode.check.model import Model
from swarmnode.check.readers import read_history
from swarmnode.check.register import CasRegister
from swarmnode.check.search import MAX_CONFIGURATIONS, Budget, search
from swarmnode.check.shrink import shrink


@dataclass
class Counterexample:
    """Operations on one key that no legal order explains.

    `operations` is a sub-history of the key's history that is itself not
    linearizable, so the whole history is not either. When shrunk, it is the
    shortest failing prefix of the key's history (operations still running at
    the cut are pending, their outcome unknown) without the reads and failed
    compares it does not need; `culprit` is then the operation whose
    completion no legal order allows, and `linearization` a legal order of the
    rest with the culprit still pending.
    """

    key: Hashable
    operations: list[Operation]
    key_operations: int
    shrunk: bool = False
    culprit: Operation | None = None
    linearization: list[Operation] | None = None


@dataclass
class Stats:
    operations: int = 0
    #: Reads (and other pure operations) with unknown outcomes: they constrain nothing.
    dropped_unknown: int = 0
    keys: int = 0
    keys_checked: int = 0
    #: Search steps, shrinking included.
    steps: int = 0
    configurations: int = 0
    seconds: float = 0.0


@dataclass
class Result:
    """`linearizable` is None when the budget ran out before an answer."""

    linearizable: bool | None
    counterexample: Counterexample | None = None
    stats: Stats = field(default_factory=Stats)
    #: The history as read, when the check started from a file.
    history: History | None = None

    @property
    def verdict(self) -> str:
        if self.linearizable is None:
            return "unknown"
        return "linearizable" if self.linearizable else "not-linearizable"


def check_history(
    ops: Sequence[Operation],
    model: Model,
    *,
    timeout: float | None = None,
    max_steps: int | None = None,
    max_configurations: int | None = MAX_CONFIGURATIONS,
    explain: bool = False,
) -> Result:
    """Decide whether `ops` is linearizable under `model`.

    `timeout` (seconds) and `max_steps` bound the whole check, shrinking
    included, and `max_configurations` the memory of each search; when they
    run out the verdict is unknown, never a guess. With
    `explain`, a failing key's history is shrunk to a small counterexample
    (within the same budget; what was shrunk before it ran out is kept).
    """
    started = time.monotonic()
    budget = Budget(seconds=timeout, max_steps=max_steps, max_configurations=max_configurations)
    stats = Stats()
    kept = [op for op in ops if not (op.output is UNKNOWN and model.pure(op))]
    stats.operations = len(kept)
    stats.dropped_unknown = len(ops) - len(kept)
    parts = model.partition(kept)
    stats.keys = len(parts)
    order = sorted(parts, key=lambda k: (len(parts[k]), repr(k)))

    verdict: bool | None = True
    counterexample = None
    for key in order:
        if budget.exhausted:
            verdict = None
            break
        part = parts[key]
        found = search(part, model, budget)
        stats.keys_checked += 1
        stats.configurations += found.configurations
        if found.linearizable is None:
            verdict = None
        elif not found.linearizable:
            verdict = False
            counterexample = Counterexample(
                key, sorted(part, key=lambda op: (op.call, op.id)), len(part)
            )
            if explain:
                counterexample = shrink(counterexample, model, budget)
            break
    stats.steps = budget.steps
    stats.seconds = time.monotonic() - started
    return Result(verdict, counterexample, stats)


def check_file(
    path: str | Path,
    model: Model | None = None,
    *,
    format: str = "auto",
    timeout: float | None = None,
    max_steps: int | None = None,
    max_configurations: int | None = MAX_CONFIGURATIONS,
    explain: bool = False,
) -> Result:
    """Read a history file (see `readers`) and check it; the default model is the CAS register.

    Raises HistoryError (naming the file and line) when the file cannot be read.
    """
    model = model if model is not None else CasRegister()
    history = read_history(path, model.functions, format)
    result = check_history(
        history.ops,
        model,
        timeout=timeout,
        max_steps=max_steps,
        max_configurations=max_configurations,
        explain=explain,
    )
    result.history = history
    return result
