"""The service layer: one operation table, one explicit chain of steps around every call.

Every front end (the msgpack socket, the Redis protocol, the simulator's
workload) calls `Service.call(op, args, ctx)`. The call goes through the same
chain of steps, each an `async (request, next) -> result`, in this order:

    measure -> authorise -> activity -> validate -> quota -> reads -> embed
            -> route -> execute

`measure` records the operation in analytics and metrics (outermost, so even
a refused request is counted), `authorise` checks the caller's access,
`activity` counts the request under its agent, `validate` checks the
arguments against the operation table, `quota` refuses a write past its
agent's quota, `reads` tells the archiver which entries are in use, `embed`
turns text into vectors for namespaces with an embedder, `route` sends a
request on a sharded namespace to the nodes that hold its partitions
(`routing/`), and `execute` runs the operation's executor.
Steps are plain data in a list, so what runs around an operation is visible in
one place instead of being patched into a dispatch function.

A step that acts on a few operations only names them in `ops`; the chain of every
other operation is bound without it, so a get does not pass through the steps of
writes. Each operation's chain is bound once, when steps are added or executors
registered.

Most steps, for most operations, only check or note something before the call
(validate, authorise, route on a namespace that is not sharded) or only count
something after it (activity, reads, measure). A step says so with `hooks(spec)`:
plain functions (`Hooks`) that the chain runs inline, one after another in one
coroutine, instead of a coroutine and an await of their own per step. A hook
that finds the request needs the step's full async form after all (a sharded
namespace for route, a quota to reserve) returns True from `enter`, and the step
runs in full from there. Order and meaning are those of the nested steps: a
step's `leave` and `fail` see exactly what its `__call__` would have seen.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from swarmnode.errors import BadRequest
from swarmnode.service.table import TABLE, OpSpec, Request

Next = Callable[[Request], Awaitable[Any]]
Executor = Callable[[Request], Awaitable[Any]]


class Step(Protocol):
    name: str
    """A step may also have `ops`, a frozenset of the only operations it acts on, and
    `hooks(spec) -> Hooks | None`, its plain form for an operation (None: run it in
    full)."""

    async def __call__(self, req: Request, nxt: Next) -> Any: ...


@dataclass(frozen=True, slots=True)
class Hooks:
    """What a step does for one operation, as plain functions the chain runs inline.

    `enter(req)` runs before the rest of the chain; it raises to refuse, and returns
    True when this request needs the step's full async form after all (which then
    runs, and neither `leave` nor `fail` does). `leave(req, result)` runs after the
    rest succeeded and returns the result (the same or a new one); it must not raise.
    `fail(req, exc)` runs after the rest raised an `Exception` (a cancellation is
    not one), which then goes on. An empty `Hooks()` is a step with nothing to do
    for that operation: it is left out of its chain."""

    enter: Callable[[Request], bool] | None = None
    leave: Callable[[Request, Any], Any] | None = None
    fail: Callable[[Request, Exception], None] | None = None


NOTHING = Hooks()
"""A step's form for an operation it can have no effect on."""
Form = tuple[Step, Hooks | None]


class Service:
    """The operations of one node, behind one chain of steps."""

    def __init__(self, table: dict[str, OpSpec] | None = None) -> None:
        self.table = dict(table or TABLE)
        self.executors: dict[str, Executor] = {}
        self.steps: list[Step] = []
        self._chain: Next = self._execute
        self._chains: dict[str, tuple[OpSpec, Next]] = {}
        """The operations the node has (in the table, with an executor) and their chains."""
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
        self._chain = self._bind_unknown()
        self._chains = {op: (self.table[op], self._bind(op)) for op in self.executors}

    def _bind_unknown(self) -> Next:
        """The chain of an operation the node does not have: through every step in full
        (each lets it pass, measure counts it, execute refuses it)."""
        chain: Next = self._execute
        for step in reversed(self.steps):
            chain = functools.partial(step, nxt=chain)
        return chain

    def _bind(self, op: str) -> Next:
        """The chain of one operation: each step that acts on it, in its plain form where
        it has one."""
        forms: list[Form] = []
        for step in self.steps:
            only: frozenset[str] | None = getattr(step, "ops", None)
            if only is not None and op not in only:
                continue
            hooks_of = getattr(step, "hooks", None)
            hooks = hooks_of(self.table[op]) if hooks_of is not None else None
            if hooks != NOTHING:
                forms.append((step, hooks))
        return _compile(forms, self.executors[op])

    def call(self, op: str, args: Any, ctx: Any) -> Awaitable[Any]:
        """Carry out one request (a coroutine to await); raises SwarmError subclasses for
        clients to see."""
        bound = self._chains.get(op) if type(op) is str else None
        if bound is None:
            shown = op[:32] if isinstance(op, str) else "?"
            return self._chain(Request(OpSpec(shown, "", (), ""), args, ctx, known=False))
        spec, chain = bound
        return chain(Request(spec, args, ctx))

    def refuse_unknown(self, req: Request) -> None:
        if not req.known:
            known = ", ".join(sorted(self.executors))
            raise BadRequest(f"unknown operation {req.op!r}; known: {known}")

    async def _execute(self, req: Request) -> Any:
        self.refuse_unknown(req)
        return await self.executors[req.op](req)


def _compile(forms: list[Form], executor: Executor) -> Next:
    """The chain of `forms` (outermost first) around `executor`, bound from the inside
    out: a step without hooks is called with its successor; a run of steps with hooks
    becomes one function that runs them inline. The outermost is always a coroutine, so
    nothing of the chain runs before the call is awaited."""
    tails: list[Next] = [executor] * (len(forms) + 1)
    """tails[i]: the chain of forms[i:]."""
    end = len(forms)
    """The first step at or after i without hooks (or the end)."""
    for i in range(len(forms) - 1, -1, -1):
        step, hooks = forms[i]
        if hooks is None:
            tails[i] = functools.partial(step, nxt=tails[i + 1])
            end = i
            continue
        run = []
        for k in range(i, end):
            step_k, hooks_k = forms[k]
            assert hooks_k is not None
            # What runs when `enter` asks for the step in full: the step, then the rest.
            full = functools.partial(step_k, nxt=tails[k + 1]) if hooks_k.enter else None
            run.append((hooks_k, full))
        after = any(h.leave is not None or h.fail is not None for h, _ in run)
        tails[i] = _inline(run, tails[end]) if after or i == 0 else _enter_only(run, tails[end])
    return tails[0]


def _enter_only(run: list[tuple[Hooks, Next | None]], rest: Next) -> Next:
    """Hooks with nothing to do after the call: a plain function that returns the
    awaitable of what comes next (no coroutine of its own). It raises at once what an
    `enter` raises; its caller awaits it inside the same `try`."""
    enters = tuple((h.enter, full) for h, full in run if h.enter is not None)

    def chain(req: Request) -> Awaitable[Any]:
        for enter, full in enters:
            if enter(req):
                return full(req)  # type: ignore[misc]
        return rest(req)

    return chain


def _inline(run: list[tuple[Hooks, Next | None]], rest: Next) -> Next:
    """Hooks with something to do after the call (or the outermost run): one coroutine
    for all of them."""
    n = len(run)
    enters = tuple((i, h.enter, full) for i, (h, full) in enumerate(run) if h.enter is not None)
    leaves = tuple((i, h.leave) for i, (h, _) in reversed(list(enumerate(run))) if h.leave)
    fails = tuple((i, h.fail) for i, (h, _) in reversed(list(enumerate(run))) if h.fail)

    async def chain(req: Request) -> Any:
        # `at`: the hook whose `enter` runs, or n once all have; the hooks before it
        # have entered, so theirs are the `leave` and `fail` that apply.
        at = 0
        try:
            for at, enter, full in enters:  # noqa: B007 - `at` is read after the loop
                if enter(req):
                    result = await full(req)
                    break
            else:
                at = n
                result = await rest(req)
        except Exception as exc:
            for i, fail in fails:
                if i < at:
                    fail(req, exc)
            raise
        for i, leave in leaves:
            if i < at:
                result = leave(req, result)
        return result

    return chain
