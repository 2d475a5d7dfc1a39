"""A compare-and-set register per key: read, write v, cas [expected new].

Inputs are `(f, argument)` pairs as the readers build them: `("read", None)`,
`("write", v)`, `("cas", (expected, new))`. Outputs: a read returns the value
(None when the key is absent); a write returns None; a cas returns True when it
swapped and False when its compare failed (Jepsen's `:fail :cas`, which is an
observation that the value was not `expected`). Any output may be `UNKNOWN`.
`None` is the absent value throughout: the initial state, `cas [None x]`
(create if absent), and a read of a key never written.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from swarmnode.check.history import UNKNOWN, Operation


def show_value(value: Any) -> str:
    return "absent" if value is None else repr(value)


class CasRegister:
    """The sequential specification of a linearizable compare-and-set register."""

    name = "cas-register"
    functions = frozenset({"read", "write", "cas"})

    def init(self) -> Hashable:
        return None

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        f, arg = input
        if f == "read":
            return (output is UNKNOWN or output == state), state
        if f == "write":
            return True, arg
        expected, new = arg
        matched = state == expected
        if output is UNKNOWN:
            return True, (new if matched else state)
        if output:
            return matched, new
        return not matched, state

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        parts: dict[Hashable, list[Operation]] = {}
        for op in ops:
            parts.setdefault(op.key, []).append(op)
        return parts

    def pure(self, op: Operation) -> bool:
        f, _ = op.input
        return f == "read" or (f == "cas" and op.output is False)

    def describe(self, op: Operation) -> str:
        f, arg = op.input
        out = op.output
        if f == "read":
            result = "?" if out is UNKNOWN else show_value(out)
            return f"read -> {result}"
        if f == "write":
            return f"write {show_value(arg)} -> {'?' if out is UNKNOWN else 'ok'}"
        expected, new = arg
        result = "?" if out is UNKNOWN else ("ok" if out else "mismatch")
        return f"cas [{show_value(expected)} {show_value(new)}] -> {result}"

    def describe_state(self, state: Any) -> str:
        return show_value(state)
