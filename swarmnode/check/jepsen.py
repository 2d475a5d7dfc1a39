"""Jepsen's etcd test log: `INFO  jepsen.util - PROCESS  :TYPE  :F  VALUE` lines.

Fields are separated by tabs or spaces. Values are EDN: `nil`, integers,
`[from to]`, keywords such as `:timed-out`. How each line enters the history:

- `:invoke`: starts an operation (a read's `nil` is a placeholder);
- `:ok`: completes it; a read carries the value read, `nil` if never written;
- `:fail :cas [from to]`: the cas ran and its compare failed, which observes
  that the value was not `from` (this is how Jepsen's etcd client reports it,
  and how Porcupine's test suite reads these logs);
- `:fail ... :timed-out` and `:info`: unknown outcome, the operation stays
  pending for ever (it may or may not take effect after its invocation);
- any other `:fail`: the operation did not take effect and is dropped;
- lines of any other shape (Jepsen's own log, the nemesis) are not history.

There are no timestamps: an event's position is its line number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from swarmnode.check.history import History, HistoryBuilder, HistoryError

_LINE = re.compile(
    r"^\S+\s+jepsen\.util\s+-\s+(?P<process>\d+)\s+:(?P<type>invoke|ok|fail|info)"
    r"\s+:(?P<f>[\w-]+)(?:\s+(?P<value>.*?))?\s*$"
)
_TOKEN = re.compile(r'[\s,]*(\[|\]|"(?:[^"\\]|\\.)*"|[^\s\[\]",]+)[\s,]*')


class Keyword(str):
    """An EDN keyword such as `:timed-out`, kept apart from strings."""

    def __repr__(self) -> str:
        return str(self)


def parse_edn(text: str) -> Any:
    """The EDN subset these logs use: nil, booleans, integers, strings, keywords, vectors."""
    tokens: list[str] = []
    at = 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            raise ValueError(f"cannot read value {text!r}")
        tokens.append(m[1])
        at = m.end()
    value, used = _parse_tokens(tokens, 0, text)
    if used != len(tokens):
        raise ValueError(f"cannot read value {text!r}")
    return value


def _parse_tokens(tokens: list[str], at: int, text: str) -> tuple[Any, int]:
    if at >= len(tokens):
        raise ValueError(f"cannot read value {text!r}")
    token = tokens[at]
    if token == "[":
        items: list[Any] = []
        at += 1
        while at < len(tokens) and tokens[at] != "]":
            item, at = _parse_tokens(tokens, at, text)
            items.append(item)
        if at >= len(tokens):
            raise ValueError(f"unclosed vector in {text!r}")
        return tuple(items), at + 1
    if token == "nil":
        return None, at + 1
    if token in ("true", "false"):
        return token == "true", at + 1
    if token.startswith(":") and len(token) > 1:
        return Keyword(token), at + 1
    if token.startswith('"'):
        return json.loads(token), at + 1
    if re.fullmatch(r"-?\d+", token):
        return int(token), at + 1
    raise ValueError(f"cannot read value {text!r}")


def _input(f: str, value: Any) -> tuple[str, Any]:
    if f == "write":
        return ("write", value)
    if f == "cas":
        if not isinstance(value, tuple) or len(value) != 2:
            raise ValueError(f"a cas value must be [from to], not {value!r}")
        return ("cas", value)
    return (f, None)


def read_jepsen(lines: Iterable[str], source: str, functions: frozenset[str]) -> History:
    """Read a Jepsen etcd log; raises HistoryError naming the line at fault."""
    history = History(source=source, format="jepsen", time_unit="line")
    builder = HistoryBuilder(history, functions)
    for line_no, text in enumerate(lines, start=1):
        m = _LINE.match(text)
        if m is None:
            if text.strip():
                history.other_lines += 1
            continue
        process = int(m["process"])
        kind, f = m["type"], m["f"]
        try:
            value = parse_edn(m["value"] or "nil")
            op_input = _input(f, value) if kind == "invoke" and f in functions else None
        except ValueError as exc:
            raise HistoryError(source, line_no, str(exc)) from exc
        if kind == "invoke":
            builder.invoke(process, f, None, op_input, position=line_no, time=None, line=line_no)
        elif kind == "ok":
            output = value if f == "read" else (True if f == "cas" else None)
            builder.complete(process, f, output, position=line_no, time=None, line=line_no)
        elif kind == "info" or value == Keyword(":timed-out"):
            builder.unknown(process, f, line=line_no)
        elif f == "cas" and isinstance(value, tuple):
            builder.complete(process, f, False, position=line_no, time=None, line=line_no)
        else:
            builder.abandon(process, f, line=line_no)
    return builder.finish()
