"""The service layer: one operation table, one explicit chain of steps around every call.

Every front end (the msgpack socket, the Redis protocol, the simulator's
workload) calls `Service.call(op, args, ctx)`. The call goes through the same
chain of steps, each an `async (request, next) -> result`, in this order:

    measure -> validate -> authorise -> embed -> route -> execute

`measure` records the operation in analytics and metrics (outermost, so even
a refused request is counted), `validate` checks the arguments against the
operation table, `embed` turns text into vectors for namespaces with an
embedder, `route` sends a request on a sharded namespace to the nodes that
hold its partitions (`routing/`), and `execute` runs the operation's executor.
Steps are plain data in a list, so what runs around an operation is visible in
one place instead of being patched into a dispatch function.

A step that acts on a few operations only names them in `ops`; the chain of every
other operation is bound without it, so a get does not pass through the steps of
writes. Each operation's chain is bound once, when steps are added, and each step
is called with its successor directly (no wrapper coroutine between steps).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from swarmnode.errors import BadRequest
from swarmnode.service.table import TABLE, OpSpec, Request

Next = Callable[[Request], Awaitable[Any]]
Executor = Callable[[Request], Awaitable[Any]]


class Step(Protocol):
    name: str
    """A step may also have `ops`, a frozenset of the only operations it acts on."""

    async def __call__(self, req: Request, nxt: Next) -> Any: ...


class Service:
    """The operations of one node, behind one chain of steps."""

    def __init__(self, table: dict[str, OpSpec] | None = None) -> None:
        self.table = dict(table or TABLE)
        self.executors: dict[str, Executor] = {}
        self.steps: list[Step] = []
        self._chain: Next = self._execute
        self._chains: dict[str, Next] = {}
        self._rebuild()

    def register(self, op: str, executor: Executor) -> None:
        """Bind an operation of the table to the function that carries it out."""
        if op not in self.table:
            raise KeyError(f"{op} is not in the operation table")
        self.executors[op] = executor
        self._rebuild()

    def use(self, step: Step, *, before: str | None = None) -> None:
        """Add a step to the chain (at the end, just before execute, or before another)."""
        at = len(self.steps)
        if before is not None:
            at = next(i for i, s in enumerate(self.steps) if s.name == before)
        self.steps.insert(at, step)
        self._rebuild()

    def _rebuild(self) -> None:
        self._chain = self._bind(None)
        self._chains = {op: self._bind(op) for op in self.table}

    def _bind(self, op: str | None) -> Next:
        """The chain of one operation (None: of an unknown one, through every step)."""
        chain: Next = self._execute if op is None else self.executors.get(op, self._execute)
        for step in reversed(self.steps):
            only: frozenset[str] | None = getattr(step, "ops", None)
            if op is None or only is None or op in only:
                chain = functools.partial(step, nxt=chain)
        return chain

    def call(self, op: str, args: Any, ctx: Any) -> Awaitable[Any]:
        """Carry out one request (a coroutine to await); raises SwarmError subclasses for
        clients to see."""
        spec = self.table.get(op) if isinstance(op, str) else None
        if spec is None or op not in self.executors:
            shown = op[:32] if isinstance(op, str) else "?"
            return self._chain(Request(OpSpec(shown, "", (), ""), args, ctx, known=False))
        return self._chains[op](Request(spec, args, ctx))

    def refuse_unknown(self, req: Request) -> None:
        if not req.known:
            known = ", ".join(sorted(self.executors))
            raise BadRequest(f"unknown operation {req.op!r}; known: {known}")

    async def _execute(self, req: Request) -> Any:
        self.refuse_unknown(req)
        return await self.executors[req.op](req)
