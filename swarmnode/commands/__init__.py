"""The command layer: what a client's write does to one entry, as a pure function.

`execute(op, current, ctx, clock) -> Outcome` takes the operation, the entry as
it is now (or None), the namespace's definition and a clock reading, and
returns the delta to join into the entry and the result to give the client.
It touches no LMDB, thread or clock, so every rule of the write path (kinds,
TTLs, conditional writes, policies) is tested without a store; the storage
engine below it only loads, joins, stores and indexes.

Register writes differ by namespace policy (`policies.py`): last-writer-wins,
multi-value, or consensus (multi-value whose conflicts a Raft group settles).
Counters and sets behave the same in every namespace.
"""

from swarmnode.commands.base import ALL, ClockReading, CommandContext, Outcome
from swarmnode.commands.dispatch import execute, is_command, members_needed, target

__all__ = [
    "ALL",
    "ClockReading",
    "CommandContext",
    "Outcome",
    "execute",
    "is_command",
    "members_needed",
    "target",
]
