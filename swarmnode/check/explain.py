"""A counterexample as lines of text: the operations, a legal order of all but
the culprit, and the culprit that no legal order allows."""

from __future__ import annotations

from swarmnode.check.checker import Counterexample
from swarmnode.check.history import Operation
from swarmnode.check.model import Model


def _when(time: float | None, line: int | None, time_unit: str) -> str:
    if line is None:
        return "never (outcome unknown)"
    if time_unit == "line" or time is None:
        return f"line {line}"
    return f"{time:.6f}s (line {line})"


def _table(ops: list[Operation], model: Model, time_unit: str) -> list[str]:
    rows = [("process", "operation", "invoked", "completed")]
    for op in ops:
        rows.append(
            (
                str(op.process),
                model.describe(op),
                _when(op.call_time, op.call_line, time_unit),
                _when(op.ret_time, op.ret_line, time_unit),
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    return [
        "    "
        + "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]


def explain(cx: Counterexample, model: Model, time_unit: str) -> list[str]:
    """Readable lines for a counterexample, indented under the verdict line."""
    key = "the one key" if cx.key is None else f"key {cx.key!r}"
    how = (
        "the shortest failing prefix, without the reads it does not need"
        if cx.shrunk
        else "the whole history of that key"
    )
    lines = [
        f"  {key}: these {len(cx.operations)} of its {cx.key_operations} operations "
        f"cannot be linearized ({how}):"
    ]
    lines += _table(cx.operations, model, time_unit)
    if cx.culprit is None:
        return lines
    if cx.linearization is not None:
        lines.append("  with the last completion still pending, a legal order is:")
        state = model.init()
        for op in cx.linearization:
            _, state = model.step(state, op.input, op.output)
            lines.append(
                f"    process {op.process}: {model.describe(op)}"
                f"  (value now {model.describe_state(state)})"
            )
    culprit = cx.culprit
    lines.append(
        f"  but process {culprit.process}'s {model.describe(culprit)}, completed "
        f"{_when(culprit.ret_time, culprit.ret_line, time_unit)}, fits no legal order."
    )
    return lines
