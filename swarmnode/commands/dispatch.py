"""From an operation to its command, and what it needs loaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swarmnode.commands import consensus, namespaces, writes
from swarmnode.commands.base import ALL, ClockReading, CommandContext, Outcome
from swarmnode.crdt.entry import Entry
from swarmnode.errors import InternalError
from swarmnode.storage.namespaces import SYSTEM_NS
from swarmnode.storage.ops import (
    Decided,
    DefineNs,
    Delete,
    DeleteNs,
    Expire,
    Incr,
    Put,
    SAdd,
    SRem,
)

Command = Callable[..., Outcome]

COMMANDS: dict[type, Command] = {
    Put: writes.put,
    Delete: writes.delete,
    Expire: writes.expire,
    Incr: writes.incr,
    SAdd: writes.sadd,
    SRem: writes.srem,
    DefineNs: namespaces.define,
    DeleteNs: namespaces.delete,
    Decided: consensus.decided,
}
"""Every client write the engine runs through the command layer."""


def is_command(op: object) -> bool:
    return type(op) in COMMANDS


def target(op: Any) -> tuple[str, str]:
    """The (namespace, key) of the entry a command writes: a definition lives in `_ns`."""
    if isinstance(op, DefineNs | DeleteNs):
        return SYSTEM_NS, op.ns
    return op.ns, op.key


def members_needed(op: object, header: Entry | None, now_ms: int) -> list[str] | None:
    """Set members the command reads or writes; ALL for every member, [] for none.

    `header` is the stored entry with at most one member loaded: enough to see
    an expired set, whose next write clears (so touches) every member.
    """
    if isinstance(op, Delete):
        return ALL
    if isinstance(op, SAdd | SRem):
        s = header.orset if header is not None else None
        if isinstance(op, SAdd) and s is not None and s.live() and not s.visible(now_ms):
            return ALL
        members = [op.members] if isinstance(op.members, str) else op.members
        return [m for m in members if isinstance(m, str)] if isinstance(members, list) else []
    return []


def execute(op: object, current: Entry | None, ctx: CommandContext, clock: ClockReading) -> Outcome:
    command = COMMANDS.get(type(op))
    if command is None:
        raise InternalError(f"no command for {type(op).__name__}")
    outcome = command(op, current, ctx, clock)
    if outcome.delta is not None:
        outcome.delta.by(ctx.agent)
    return outcome
