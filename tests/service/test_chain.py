"""The service chain: steps run inline through their hooks behave exactly as the same
steps nested as coroutines (what runs, in what order, what each sees)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from swarmnode.errors import BadRequest, Forbidden, SwarmError
from swarmnode.service.chain import Hooks, Next, Service
from swarmnode.service.table import OpSpec, Request

TABLE = {"op": OpSpec("op", "", (), "")}


class Traced:
    """A step that notes what it does in `trace`: before the call it refuses when told
    (`refuse`), asks for its full form when told (`full`); after it, it tags the result
    or notes the failure. With `inline`, the chain runs it through its hooks."""

    def __init__(self, name: str, trace: list[str], *, inline: bool, after: bool) -> None:
        self.name = name
        self.trace = trace
        self.inline = inline
        self.after = after

    def enter(self, req: Request) -> bool:
        if req.args.get("full") == self.name:
            return True  # the full form runs, and says so
        self.trace.append(f"enter {self.name}")
        if req.args.get("refuse") == self.name:
            raise Forbidden(f"{self.name} refuses")
        return False

    def leave(self, req: Request, result: Any) -> Any:
        self.trace.append(f"leave {self.name}")
        return [*result, self.name]

    def fail(self, req: Request, exc: Exception) -> None:
        self.trace.append(f"fail {self.name} {type(exc).__name__}")

    def hooks(self, spec: OpSpec) -> Hooks | None:
        if not self.inline:
            return None
        if not self.after:
            return Hooks(enter=self.enter)
        return Hooks(enter=self.enter, leave=self.leave, fail=self.fail)

    async def __call__(self, req: Request, nxt: Next) -> Any:
        if self.enter(req):
            self.trace.append(f"full {self.name}")
        try:
            result = await nxt(req)
        except Exception as exc:
            if self.after:
                self.fail(req, exc)
            raise
        return self.leave(req, result) if self.after else result


def chain_of(kinds: str, trace: list[str], inline: bool) -> Service:
    """Steps a, b, c... : `h` one with only a check before, `a` one with work after too,
    `s` one that is always a coroutine (no hooks)."""
    service = Service(TABLE)

    async def execute(req: Request) -> Any:
        trace.append("execute")
        if req.args.get("crash"):
            raise RuntimeError("bug")
        if req.args.get("bad"):
            raise BadRequest("bad")
        return []

    service.register("op", execute)
    for i, kind in enumerate(kinds):
        name = "abcdefgh"[i]
        step = Traced(name, trace, inline=inline and kind != "s", after=kind != "h")
        service.use(step)
    return service


async def run(service: Service, args: dict[str, Any]) -> tuple[Any, str | None]:
    try:
        return await service.call("op", args, None), None
    except (SwarmError, RuntimeError) as exc:
        return None, type(exc).__name__


CASES = [
    {},
    {"crash": True},
    {"bad": True},
    *({"refuse": n} for n in "abcdef"),
    *({"full": n} for n in "abcdef"),
    *({"full": n, "bad": True} for n in "abcdef"),
]


@pytest.mark.parametrize("kinds", ["ahahah", "hhh", "aaa", "hashah", "shaash", "hhsaaa", "ah"])
@pytest.mark.parametrize("args", CASES)
async def test_hooks_run_as_the_nested_steps_would(kinds: str, args: dict[str, Any]) -> None:
    inline_trace: list[str] = []
    nested_trace: list[str] = []
    inline = await run(chain_of(kinds, inline_trace, inline=True), dict(args))
    nested = await run(chain_of(kinds, nested_trace, inline=False), dict(args))
    assert inline == nested
    assert inline_trace == nested_trace
    assert "execute" in nested_trace or "refuse" in args


async def test_a_refusal_before_any_coroutine_still_raises_only_when_awaited() -> None:
    trace: list[str] = []
    service = chain_of("hh", trace, inline=True)
    pending = service.call("op", {"refuse": "a"}, None)  # must not raise yet
    assert trace == []
    with pytest.raises(Forbidden, match="a refuses"):
        await pending


async def test_a_cancelled_call_runs_no_hook_after_it() -> None:
    trace: list[str] = []
    service = Service(TABLE)
    started = asyncio.Event()

    async def execute(req: Request) -> Any:
        started.set()
        await asyncio.Event().wait()

    service.register("op", execute)
    service.use(Traced("a", trace, inline=True, after=True))
    task = asyncio.get_running_loop().create_task(service.call("op", {}, None))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert trace == ["enter a"]


async def test_a_step_with_nothing_to_do_for_an_operation_is_left_out_of_its_chain() -> None:
    trace: list[str] = []
    service = Service(TABLE)

    async def execute(req: Request) -> Any:
        return "done"

    class Idle:
        name = "idle"

        def hooks(self, spec: OpSpec) -> Hooks:
            return Hooks()

        async def __call__(self, req: Request, nxt: Next) -> Any:
            trace.append("idle")
            return await nxt(req)

    service.register("op", execute)
    service.use(Idle())
    assert await service.call("op", {}, None) == "done"
    assert trace == []
    # An operation the node does not have still passes every step (measure counts it).
    with pytest.raises(BadRequest, match="unknown operation"):
        await service.call("nothing", {}, None)
    assert trace == ["idle"]
