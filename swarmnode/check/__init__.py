"""Linearizability checking of recorded histories (Wing–Gong / Lowe search, per key).

    from swarmnode.check import CasRegister, check_file, check_history

    result = check_file("run.jsonl")            # JSONL or Jepsen log, by extension/content
    result.verdict                              # "linearizable" | "not-linearizable" | "unknown"
    check_history(ops, CasRegister(), timeout=10.0, explain=True)

Modules: `history` (operations, the builder the readers share), `jsonl` and
`jepsen` (readers), `readers` (choosing one), `model` (the model protocol),
`register` (the compare-and-set register), `search` (the search on one key),
`shrink` and `explain` (counterexamples), `checker` (the whole check), `cli`.
"""

from swarmnode.check.checker import Counterexample, Result, Stats, check_file, check_history
from swarmnode.check.history import UNKNOWN, History, HistoryError, Operation
from swarmnode.check.model import Model
from swarmnode.check.register import CasRegister

__all__ = [
    "UNKNOWN",
    "CasRegister",
    "Counterexample",
    "History",
    "HistoryError",
    "Model",
    "Operation",
    "Result",
    "Stats",
    "check_file",
    "check_history",
]
