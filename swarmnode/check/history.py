"""Operations with invoke/complete windows, and the builder both readers feed.

A history is a list of `Operation`s: what a client asked (`input`), what came
back (`output`, or `UNKNOWN`), and where in the history the invocation and the
completion happened. Readers turn events (invoke, then ok/fail/info) into
operations through one `HistoryBuilder`, so the rules are the same for every
format:

- a completion that says the operation certainly did not take effect drops it
  (`abandon`): it constrains nothing;
- a completion whose outcome is unknown (`unknown`), and an invocation still
  open at the end of the history, leave the operation pending for ever: it may
  or may not take effect, at any point after its invocation;
- each process has at most one operation open at a time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any


class _Unknown:
    """The output of an operation whose outcome nobody saw."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


class HistoryError(ValueError):
    """A history that cannot be read: names the file and line at fault."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation.

    `call` and `ret` are positions in the history's total order of events (the
    JSONL `index`, the Jepsen log line); only their order matters to the search.
    `ret` is `math.inf` for an operation that never completed. `call_time` and
    `ret_time` are the recorded clock readings, kept for explanations only.
    """

    id: int
    process: int | str
    f: str
    key: Hashable
    input: Any
    output: Any
    call: float
    ret: float = math.inf
    call_time: float | None = None
    ret_time: float | None = None
    call_line: int | None = None
    ret_line: int | None = None

    @property
    def completed(self) -> bool:
        return self.ret != math.inf


@dataclass
class History:
    """What a reader produced: the operations plus what it set aside."""

    source: str
    format: str
    time_unit: str
    ops: list[Operation] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    dropped_failed: int = 0
    other_lines: int = 0


@dataclass
class _Open:
    f: str
    key: Hashable
    input: Any
    call: float
    call_time: float | None
    call_line: int | None
    checked: bool


class HistoryBuilder:
    """Pairs invocations with completions per process and builds operations.

    `checked` functions become operations; any other `f` is tracked (so a
    process's events still pair up) but only counted in `History.ignored`.
    """

    def __init__(self, history: History, checked: frozenset[str]) -> None:
        self._history = history
        self._checked = checked
        self._open: dict[int | str, _Open] = {}
        self._next_id = 0

    def invoke(
        self,
        process: int | str,
        f: str,
        key: Hashable,
        input: Any,
        *,
        position: float,
        time: float | None,
        line: int | None,
    ) -> None:
        if process in self._open:
            prior = self._open[process]
            at = f" (line {prior.call_line})" if prior.call_line is not None else ""
            raise HistoryError(
                self._history.source,
                line,
                f"process {process!r} invokes {f} while its {prior.f}{at} is still open",
            )
        checked = f in self._checked
        if not checked:
            self._history.ignored[f] += 1
        self._open[process] = _Open(f, key, input, position, time, line, checked)

    def _close(self, process: int | str, f: str, line: int | None) -> _Open:
        pending = self._open.pop(process, None)
        if pending is None:
            raise HistoryError(
                self._history.source, line, f"process {process!r} completes {f} it never invoked"
            )
        if pending.f != f:
            raise HistoryError(
                self._history.source,
                line,
                f"process {process!r} completes {f} but its open operation is {pending.f}",
            )
        return pending

    def complete(
        self,
        process: int | str,
        f: str,
        output: Any,
        *,
        position: float,
        time: float | None,
        line: int | None,
    ) -> None:
        """The operation took effect and returned `output`."""
        pending = self._close(process, f, line)
        if pending.checked:
            self._add(pending, process, output, position, time, line)

    def unknown(self, process: int | str, f: str, *, line: int | None) -> None:
        """The outcome is unknown: the operation stays pending for ever."""
        pending = self._close(process, f, line)
        if pending.checked:
            self._add(pending, process, UNKNOWN, math.inf, None, None)

    def abandon(self, process: int | str, f: str, *, line: int | None) -> None:
        """The operation certainly did not take effect: it leaves the history."""
        pending = self._close(process, f, line)
        if pending.checked:
            self._history.dropped_failed += 1

    def finish(self) -> History:
        """Operations still open at the end are pending for ever, like `unknown`."""
        for process, pending in list(self._open.items()):
            if pending.checked:
                self._add(pending, process, UNKNOWN, math.inf, None, None)
        self._open.clear()
        self._history.ops.sort(key=lambda op: (op.call, op.id))
        return self._history

    def _add(
        self,
        pending: _Open,
        process: int | str,
        output: Any,
        ret: float,
        ret_time: float | None,
        ret_line: int | None,
    ) -> None:
        self._history.ops.append(
            Operation(
                id=self._next_id,
                process=process,
                f=pending.f,
                key=pending.key,
                input=pending.input,
                output=output,
                call=pending.call,
                ret=ret,
                call_time=pending.call_time,
                ret_time=ret_time,
                call_line=pending.call_line,
                ret_line=ret_line,
            )
        )
        self._next_id += 1
