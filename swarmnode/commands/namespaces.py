"""Namespace definitions: `ns_init` and `ns_delete` as commands on the `_ns` entry of a name.

A definition is an LWW register in the reserved namespace `_ns`, so it
replicates like data. Deleting writes a definition marked deleted with
`cleared_at`, the delete's timestamp: every entry of the namespace written at
or before it is gone on every replica, without a tombstone per key.
"""

from __future__ import annotations

from swarmnode.commands.base import ClockReading, CommandContext, Outcome
from swarmnode.crdt.entry import Entry
from swarmnode.errors import Conflict
from swarmnode.storage.namespaces import NamespaceDef, make_definition
from swarmnode.storage.ops import DefineNs, DeleteNs


def define(
    op: DefineNs, current: Entry | None, ctx: CommandContext, clock: ClockReading
) -> Outcome:
    existing = ctx.namespace
    if existing.deleted:
        existing = NamespaceDef.from_value(
            op.ns, {"cleared_at": existing.cleared_at, **kept_sharding(existing)}
        )
    definition = make_definition(op.ns, op.args, existing)
    if existing.dim is not None and definition.dim != existing.dim:
        raise Conflict(
            f"namespace {op.ns!r} has vector dimension {existing.dim}; "
            "delete the namespace to change it"
        )
    delta = Entry().put_lww(clock.ts, ctx.node_id, definition.to_value())
    return Outcome(delta, definition.public(), "ns")


def delete(
    op: DeleteNs, current: Entry | None, ctx: CommandContext, clock: ClockReading
) -> Outcome:
    ts = clock.ts
    definition = NamespaceDef.from_value(
        op.ns, {"deleted": True, "cleared_at": ts, **kept_sharding(ctx.namespace)}
    )
    delta = Entry().put_lww(ts, ctx.node_id, definition.to_value())
    return Outcome(delta, {"ns": op.ns, "deleted": True, "cleared_at": ts}, "ns")


def kept_sharding(definition: NamespaceDef) -> dict[str, object]:
    """What a delete keeps of a sharded namespace: its partitions are fixed for good (the
    entries it cleared are still counted per partition until purged), and a namespace
    defined again is sharded as before unless its creator says otherwise."""
    if not definition.partitions:
        return {}
    return {"replicas": definition.replicas, "partitions": definition.partitions, "w": definition.w}
