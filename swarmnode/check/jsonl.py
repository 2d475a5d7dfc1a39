"""The project's history format: JSON Lines, one event per line.

    {"index": 0, "time": 0.0012, "process": 3, "type": "invoke", "f": "cas",
     "key": "k1", "value": ["a", "b"]}

- `index` (int): the event's position in the history; events are ordered by
  it (the lines may come in any order, each index at most once). The order of
  indexes is the real-time order the checker relies on: an operation precedes
  another iff its completion's index is below the other's invocation's.
- `time` (number): seconds since the run started, never decreasing with
  `index`; shown in explanations, the order comes from `index`.
- `process` (int or str): the client; one open operation per process at a time.
- `type`: "invoke", then one of "ok" (took effect, here is the result), "fail"
  (certainly did not take effect) or "info" (unknown: may take effect at any
  point after the invocation, never completes). An invocation with no
  completion by the end of the file is the same as "info".
- `f`: "read", "write", "cas"; any other function (counters, sets, claims...)
  is skipped and counted, not an error.
- `key` (str, optional): the register; absent means the history's one key.
  A completion may omit it; if present it must equal its invocation's.
- `value`: write: the value written. cas: `[expected, new]`, `null` expected
  meaning "absent". read: null on invoke; the `ok` carries the value read,
  `null` meaning absent. Writing `null` makes the key absent.

Extra fields are allowed and ignored. Values are compared as canonical JSON
(keys sorted), so `1`, `1.0` and `true` are three different values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from swarmnode.check.history import History, HistoryBuilder, HistoryError

TYPES = ("invoke", "ok", "fail", "info")


@dataclass(frozen=True, slots=True)
class JsonValue:
    """A JSON value made hashable: equal iff the canonical texts are equal."""

    text: str

    def __repr__(self) -> str:
        return self.text


def freeze(value: Any) -> JsonValue | None:
    """A JSON value as the register compares it; JSON null is None (absent)."""
    if value is None:
        return None
    if type(value) is int:
        return JsonValue(str(value))
    return JsonValue(_canonical(value))


_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


@dataclass(slots=True)
class _Event:
    line: int
    index: int
    time: float
    process: int | str
    type: str
    f: str
    key: Hashable
    has_key: bool
    value: Any
    has_value: bool


def _field(obj: dict[str, Any], name: str, kinds: tuple[type, ...], what: str) -> Any:
    if name not in obj:
        raise ValueError(f"missing field {name!r}")
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"field {name!r} must be {what}, not {json.dumps(value)}")
    return value


def _parse(line_no: int, text: str) -> _Event:
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("an event must be a JSON object")
    index = _field(obj, "index", (int,), "an integer")
    time = float(_field(obj, "time", (int, float), "a number"))
    if not math.isfinite(time):
        raise ValueError("field 'time' must be finite")
    process = _field(obj, "process", (int, str), "an integer or a string")
    kind = _field(obj, "type", (str,), "a string")
    if kind not in TYPES:
        raise ValueError(f"field 'type' must be one of {', '.join(TYPES)}, not {kind!r}")
    f = _field(obj, "f", (str,), "a string")
    has_key = "key" in obj
    key = _field(obj, "key", (str,), "a string") if has_key else None
    value = obj.get("value")
    return _Event(line_no, index, time, process, kind, f, key, has_key, value, "value" in obj)


def _input(event: _Event) -> tuple[str, Any]:
    if event.f == "write":
        return ("write", freeze(event.value))
    if event.f == "cas":
        pair = event.value
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"a cas value must be [expected, new], not {json.dumps(pair)}")
        return ("cas", (freeze(pair[0]), freeze(pair[1])))
    return (event.f, None)


def read_jsonl(lines: Iterable[str], source: str, functions: frozenset[str]) -> History:
    """Read a JSONL history; raises HistoryError naming the line at fault."""
    events: list[_Event] = []
    seen: dict[int, int] = {}
    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            event = _parse(line_no, text)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise HistoryError(source, line_no, str(exc)) from exc
        if event.index in seen:
            raise HistoryError(
                source, line_no, f"index {event.index} already used on line {seen[event.index]}"
            )
        seen[event.index] = line_no
        events.append(event)
    events.sort(key=lambda ev: ev.index)
    for before, after in pairwise(events):
        if after.time < before.time:
            raise HistoryError(
                source,
                after.line,
                f"time {after.time} at index {after.index} is before time {before.time} "
                f"at index {before.index} (line {before.line}): index and time disagree",
            )

    history = History(source=source, format="jsonl", time_unit="s")
    builder = HistoryBuilder(history, functions)
    keys: dict[int | str, Hashable] = {}
    for ev in events:
        if ev.type == "invoke":
            try:
                op_input = _input(ev) if ev.f in functions else (ev.f, ev.value)
            except ValueError as exc:
                raise HistoryError(source, ev.line, str(exc)) from exc
            builder.invoke(
                ev.process, ev.f, ev.key, op_input, position=ev.index, time=ev.time, line=ev.line
            )
            keys[ev.process] = ev.key
            continue
        invoked_key = keys.pop(ev.process, ev.key)
        if ev.has_key and invoked_key != ev.key:
            raise HistoryError(
                source,
                ev.line,
                f"completion names key {ev.key!r} but process {ev.process!r} "
                f"invoked on {invoked_key!r}",
            )
        if ev.type == "ok":
            output = None
            if ev.f == "read":
                if not ev.has_value:
                    raise HistoryError(source, ev.line, "a read's ok must carry the value read")
                output = freeze(ev.value)
            elif ev.f == "cas":
                output = True
            builder.complete(
                ev.process, ev.f, output, position=ev.index, time=ev.time, line=ev.line
            )
        elif ev.type == "fail":
            builder.abandon(ev.process, ev.f, line=ev.line)
        else:
            builder.unknown(ev.process, ev.f, line=ev.line)
    return builder.finish()
