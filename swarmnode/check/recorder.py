"""Recording a register history as it happens, in the JSONL format, and checking it.

Simulators and tests call `invoke` when a client sends an operation and one of
`ok`, `fail`, `info` (or `compare_failed`) when its outcome is known; the
events are the lines `jsonl.py` describes, numbered in the order they were
recorded, which is the real-time order the checker relies on. `check()` reads
those very lines back through the JSONL reader and runs the checker, so a
history that passes here passes `swarmnode check` on the written file too.

A compare that failed is recorded as what it was: a read of the value the
register held (the consensus group answers a failed cas with the current
value). The JSONL format itself can only say `fail` (no effect) for it, which
throws away what the client saw; a read keeps it in the search.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmnode.check.checker import Result, check_history
from swarmnode.check.explain import explain
from swarmnode.check.jsonl import read_jsonl
from swarmnode.check.register import CasRegister

CHECK_TIMEOUT = 60.0
"""Seconds one check may search before its verdict is `unknown`."""


@dataclass
class Pending:
    """An operation whose outcome is not recorded yet."""

    process: int | str
    f: str
    key: str
    event: dict[str, Any]


class Recorder:
    """Events of one history; `time` is the recorder's clock (seconds, never decreasing)."""

    def __init__(self, source: str = "history") -> None:
        self.source = source
        self.events: list[dict[str, Any]] = []
        self._last_time = 0.0

    def invoke(self, process: int | str, f: str, key: str, value: Any, time: float) -> Pending:
        """`f` is read (value None), write (the value) or cas ([expected, new], None: absent)."""
        event = self._event(process, "invoke", f, key, value, time)
        return Pending(process, f, key, event)

    def ok(self, op: Pending, time: float, value: Any = None) -> None:
        """It took effect; a read's `value` is what it read (None: absent)."""
        self._event(op.process, "ok", op.f, op.key, value if op.f == "read" else None, time)

    def fail(self, op: Pending, time: float) -> None:
        """It certainly did not take effect (refused, or never sent)."""
        self._event(op.process, "fail", op.f, op.key, None, time)

    def info(self, op: Pending, time: float) -> None:
        """Its outcome is unknown: it may take effect at any point after its invocation."""
        self._event(op.process, "info", op.f, op.key, None, time)

    def compare_failed(self, op: Pending, time: float, found: Any) -> None:
        """A cas did not swap because the register held `found`: recorded as that read."""
        if op.f != "cas":
            raise ValueError(f"compare_failed on a {op.f}")
        op.event["f"] = "read"
        op.event["value"] = None
        op.f = "read"
        self.ok(op, time, found)

    def _event(
        self, process: int | str, kind: str, f: str, key: str, value: Any, time: float
    ) -> dict[str, Any]:
        time = max(time, self._last_time)
        self._last_time = time
        event = {
            "index": len(self.events),
            "time": round(time, 6),
            "process": process,
            "type": kind,
            "f": f,
            "key": key,
            "value": value,
        }
        self.events.append(event)
        return event

    def lines(self) -> list[str]:
        return [json.dumps(e) for e in self.events]

    def write(self, path: Path) -> Path:
        path.write_text("".join(line + "\n" for line in self.lines()), encoding="utf-8")
        return path

    def check(self, timeout: float = CHECK_TIMEOUT) -> Result:
        """The checker's verdict on the history so far (operations still open are pending)."""
        model = CasRegister()
        history = read_jsonl(self.lines(), self.source, model.functions)
        result = check_history(history.ops, model, timeout=timeout, explain=True)
        result.history = history
        return result

    def operations(self, f: str | None = None) -> int:
        """How many operations were invoked (of function `f`, if given)."""
        return sum(1 for e in self.events if e["type"] == "invoke" and f in (None, e["f"]))


def describe(result: Result) -> str:
    """The verdict and, for a history that is not linearizable, its counterexample."""
    text = result.verdict
    if result.counterexample is not None:
        lines = explain(result.counterexample, CasRegister(), "s")
        text += "\n" + "\n".join(lines)
    return text
