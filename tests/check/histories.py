"""Small histories written by hand, and brute force to judge them by."""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from typing import Any

from swarmnode.check import UNKNOWN, CasRegister, Operation
from swarmnode.check.jsonl import read_jsonl

REGISTER = CasRegister()


class Ops:
    """Builds operations with explicit invoke/complete positions.

    h = Ops()
    h.write(1, at=(0, 2))            # process chosen automatically
    h.read(1, at=(3, 4))             # completed read that returned 1
    h.write(2, at=(5, None))         # never completed: outcome unknown
    """

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def _add(
        self,
        f: str,
        arg: Any,
        output: Any,
        at: tuple[float, float | None],
        key: Hashable,
        process: int | None,
    ) -> Operation:
        call, ret = at
        op = Operation(
            id=len(self.ops),
            process=len(self.ops) if process is None else process,
            f=f,
            key=key,
            input=(f, arg),
            output=UNKNOWN if ret is None else output,
            call=call,
            ret=math.inf if ret is None else ret,
            call_line=int(call),
            ret_line=None if ret is None else int(ret),
        )
        self.ops.append(op)
        return op

    def read(
        self,
        value: Any,
        *,
        at: tuple[float, float | None],
        key: Hashable = None,
        process: int | None = None,
    ) -> Operation:
        return self._add("read", None, value, at, key, process)

    def write(
        self,
        value: Any,
        *,
        at: tuple[float, float | None],
        key: Hashable = None,
        process: int | None = None,
    ) -> Operation:
        return self._add("write", value, None, at, key, process)

    def cas(
        self,
        expected: Any,
        new: Any,
        swapped: bool = True,
        *,
        at: tuple[float, float | None],
        key: Hashable = None,
        process: int | None = None,
    ) -> Operation:
        return self._add("cas", (expected, new), swapped, at, key, process)


def jsonl_ops(events: list[dict[str, Any]]) -> list[Operation]:
    return read_jsonl([json.dumps(e) for e in events], "test.jsonl", REGISTER.functions).ops


def brute_force(ops: list[Operation]) -> bool:
    """Linearizable by trying every order that respects real time (small histories only).

    An operation with an unknown outcome may be placed anywhere after its
    invocation or left out; one that completed must be placed.
    """

    def extend(state: Any, remaining: list[Operation]) -> bool:
        if all(op.output is UNKNOWN for op in remaining):
            return True
        for op in remaining:
            if any(other.ret < op.call for other in remaining if other is not op):
                continue
            ok, new = REGISTER.step(state, op.input, op.output)
            if ok and extend(new, [o for o in remaining if o is not op]):
                return True
        return False

    return all(extend(REGISTER.init(), part) for part in REGISTER.partition(ops).values())
