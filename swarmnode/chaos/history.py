"""The history of a chaos run: every client operation as invoke, then ok, fail or info.

One event per line of JSON (the format the linearizability checker reads):

    {"index": 0, "time": 1.25, "process": 3, "type": "invoke", "f": "cas",
     "key": "x1", "value": [16, 17]}

- `time` is seconds since the run started (monotonic clock of the harness);
- `process` is the client. A client whose operation ended `info` (unknown:
  a timeout, a connection lost mid-write) may still have it in flight, so it
  continues under a fresh process number, as in Jepsen; a process therefore
  never has two operations open;
- `type`: `ok` (it happened; value is what was read or returned), `fail` (it
  certainly did not happen: the node refused it, or the request never left),
  `info` (it may or may not have happened);
- the consensus group's registers use f `read` (invoke value null, ok value
  what was read, null = absent) and `cas` (value `[expected, new]`, expected
  null = absent): what `swarmnode check` judges. CRDT operations use their
  own names (`put`, `get`, `delete`, `incr`, `sadd`, `srem`, `vput`,
  `vsearch`, `claim`, ...), which the checker skips.

The oracles also need what the JSON lines leave out (which node served an
operation, the HLC timestamp a write was stored under), so every operation is
kept as an `Op` beside its events.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"


@dataclass
class Op:
    """One operation from invocation to outcome."""

    process: int | str
    f: str
    key: str | None
    value: Any
    node: int
    invoked: float
    completed: float | None = None
    type: str = INVOKE
    result: Any = None
    error: str | None = None
    # What the node returned beyond the history's value: the HLC timestamp of
    # a stored write, a counter's value after an increment, and the like.
    detail: dict[str, Any] = field(default_factory=dict)
    # Positions of its invocation and completion among all events of the history.
    call_index: int = -1
    ret_index: int = -1

    @property
    def latency(self) -> float | None:
        return None if self.completed is None else self.completed - self.invoked


class History:
    """Thread-safe recorder; events are written to the JSON Lines file as they happen."""

    def __init__(self, path: Path | None, start: float | None = None) -> None:
        self.start = time.monotonic() if start is None else start
        self.ops: list[Op] = []
        self.events = 0
        self._lock = threading.Lock()
        self._file = open(path, "w", encoding="utf-8") if path is not None else None  # noqa: SIM115

    def now(self) -> float:
        return time.monotonic() - self.start

    def invoke(self, process: int | str, f: str, key: str | None, value: Any, node: int) -> Op:
        with self._lock:
            op = Op(process, f, key, value, node, self.now())
            self.ops.append(op)
            op.call_index = self.events
            self._write(op.process, INVOKE, f, key, value, op.invoked)
        return op

    def complete(
        self,
        op: Op,
        outcome: str,
        value: Any = None,
        *,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        assert outcome in (OK, FAIL, INFO), outcome
        with self._lock:
            op.completed = self.now()
            op.type = outcome
            op.result = value
            op.error = error
            if detail:
                op.detail.update(detail)
            op.ret_index = self.events
            self._write(op.process, outcome, op.f, op.key, value, op.completed, error)

    def _write(
        self,
        process: int | str,
        kind: str,
        f: str,
        key: str | None,
        value: Any,
        at: float,
        error: str | None = None,
    ) -> None:
        event: dict[str, Any] = {
            "index": self.events,
            "time": round(at, 6),
            "process": process,
            "type": kind,
            "f": f,
        }
        if key is not None:
            event["key"] = key
        event["value"] = value
        if error is not None:
            event["error"] = error
        self.events += 1
        if self._file is not None:
            self._file.write(json.dumps(event, default=_jsonable, sort_keys=False) + "\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def of(self, *fs: str) -> list[Op]:
        return [op for op in self.ops if op.f in fs]


def events_of(ops: list[Op]) -> list[str]:
    """The JSON Lines of these operations alone, at their positions in the whole history
    (what `swarmnode check` reads; an operation not completed stays open, as info)."""
    events: list[tuple[int, dict[str, Any]]] = []
    for op in ops:
        base = {"process": op.process, "f": op.f, "key": op.key}
        events.append(
            (op.call_index, {**base, "type": INVOKE, "time": op.invoked, "value": op.value})
        )
        if op.type != INVOKE and op.completed is not None:
            done = {**base, "type": op.type, "time": op.completed, "value": op.result}
            events.append((op.ret_index, done))
    events.sort(key=lambda e: e[0])
    return [json.dumps({"index": i, **e}, default=_jsonable) for i, e in events]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def read_history(path: Path) -> list[dict[str, Any]]:
    """The events of a history file, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
