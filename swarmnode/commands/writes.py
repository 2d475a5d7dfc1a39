"""Client writes to one entry: put, delete, incr, sadd, srem, expire.

Each is `(op, current entry or None, context, clock) -> Outcome`; none reads
or writes anything else. The engine loads `current` with the set members
`members_needed` asked for, after dropping it if it was collectable, so a
command sees exactly the state its delta will be joined into.
"""

from __future__ import annotations

from swarmnode.commands.base import (
    ALL,
    ClockReading,
    CommandContext,
    Outcome,
    expiry,
    refuse_other_kinds,
)
from swarmnode.commands.policies import policy_of
from swarmnode.crdt.causal import CausalContext
from swarmnode.crdt.codec import packb
from swarmnode.crdt.counter import PNCounter
from swarmnode.crdt.entry import COUNTER, REGISTER, SET, Entry
from swarmnode.crdt.hlc import wall_ms
from swarmnode.crdt.orset import ORSet
from swarmnode.crdt.values import canonical, canonical_meta, pack_vector
from swarmnode.errors import BadRequest, Conflict, NotFound, TooLarge
from swarmnode.storage.namespaces import check_ttl
from swarmnode.storage.ops import Delete, Expire, Incr, Put, SAdd, SRem

MAX_MEMBERS_PER_OP = 10_000
MAX_COUNTER_TOTAL = (1 << 63) - 1
"""Per-actor totals travel as msgpack ints the codec bounds to 63 bits."""
MAX_INCREMENT = 1 << 62


def put(op: Put, current: Entry | None, ctx: CommandContext, clock: ClockReading) -> Outcome:
    ns, limits, now = ctx.namespace, ctx.limits, clock.now_ms
    value = canonical(op.value)
    size = len(packb(value))
    if size > limits.max_value_bytes:
        raise TooLarge(f"value is {size} bytes; the limit is {limits.max_value_bytes}")
    meta = canonical_meta(op.meta)
    if meta is not None and len(packb(meta)) > limits.max_value_bytes:
        raise TooLarge("meta is larger than the value size limit")
    vector = pack_vector(op.vector)
    if vector is not None:
        if ns.dim is None:
            raise BadRequest(
                f"namespace {ns.name!r} has no vector dimension; "
                "declare one with ns_init(dim=...) first"
            )
        if len(vector) // 4 != ns.dim:
            raise BadRequest(
                f"vector has {len(vector) // 4} dimensions; namespace {ns.name!r} expects {ns.dim}"
            )
    refuse_other_kinds(current, REGISTER, now, op.key)
    live = ctx.live(current, now)
    if op.if_absent and op.if_exists:
        raise BadRequest("put: if_absent and if_exists exclude each other")
    if op.if_absent and live:
        raise Conflict(f"{op.key!r} already exists in {ns.name!r}")
    if op.if_exists and not live:
        raise NotFound(f"{op.key!r} not found in {ns.name!r}")
    ts = clock.ts
    if op.keep_ttl:
        if op.ttl is not None:
            raise BadRequest("put: keep_ttl and ttl exclude each other")
        expires_at = _register_expiry(current, now) if live else expiry(ns, None, ts)
    else:
        expires_at = expiry(ns, op.ttl, ts)
    base = current or Entry()
    delta = policy_of(ns.policy).write(
        base, ts, ctx.node_id, value, meta, vector, expires_at, ctx.agent
    )
    return Outcome(delta, {"ts": ts, "expires_at": expires_at}, "put")


def _register_expiry(entry: Entry | None, now_ms: int) -> int | None:
    """The expiry of the register's value a reader sees now (the newest live sibling's)."""
    if entry is None:
        return None
    if entry.reg is not None and entry.reg.visible(now_ms):
        return entry.reg.expires_at
    if entry.mv is not None:
        siblings = entry.mv.siblings(now_ms)
        if siblings:
            return siblings[-1][1].expires_at
    return None


def delete(op: Delete, current: Entry | None, ctx: CommandContext, clock: ClockReading) -> Outcome:
    if not ctx.live(current, clock.now_ms):
        return Outcome(None, {"deleted": False}, "delete")
    assert current is not None
    return Outcome(current.delete(clock.ts, ctx.node_id), {"deleted": True}, "delete", ALL)


def incr(op: Incr, current: Entry | None, ctx: CommandContext, clock: ClockReading) -> Outcome:
    if isinstance(op.by, bool) or not isinstance(op.by, int):
        raise BadRequest("by must be an integer")
    if abs(op.by) >= MAX_INCREMENT:
        raise BadRequest(f"by must be between {-MAX_INCREMENT + 1} and {MAX_INCREMENT - 1}")
    entry = current or Entry()
    refuse_other_kinds(entry, COUNTER, clock.now_ms, op.key)
    ts = clock.ts
    actor = entry.actor(ctx.node_id, ts)
    delta = entry.incr(ts, actor, op.by, expiry(ctx.namespace, op.ttl, ts), clock.now_ms)
    totals = [*delta.counter.p.values(), *delta.counter.n.values()]
    if max(totals, default=0) > MAX_COUNTER_TOTAL:
        raise BadRequest("this increment would overflow the counter's 63-bit totals")
    value = entry.join(delta).counter.value()
    return Outcome(delta, {"value": value}, "incr")


def check_members(members: object, max_member_bytes: int) -> list[str]:
    if isinstance(members, str):
        members = [members]
    if not isinstance(members, list) or not members:
        raise BadRequest("members must be a non-empty list of strings")
    if len(members) > MAX_MEMBERS_PER_OP:
        raise TooLarge(f"at most {MAX_MEMBERS_PER_OP} members per operation")
    for m in members:
        if not isinstance(m, str):
            raise BadRequest("set members must be strings")
        if "\x00" in m:
            raise BadRequest("set members must not contain NUL characters")
        if len(m.encode("utf-8", "surrogatepass")) > max_member_bytes:
            raise TooLarge(f"a set member is limited to {max_member_bytes} bytes")
    return members


def sadd(op: SAdd, current: Entry | None, ctx: CommandContext, clock: ClockReading) -> Outcome:
    members = check_members(op.members, ctx.limits.max_member_bytes)
    now = clock.now_ms
    entry = current or Entry()
    refuse_other_kinds(entry, SET, now, op.key)
    s = entry.orset
    # An expired set is cleared before it is written again: that touches every member.
    touched = ALL if s is not None and s.live() and not s.visible(now) else members
    visible = s is not None and s.visible(now)
    before = {m for m in members if visible and s is not None and s.elems.get(m)}
    ts = clock.ts
    expires_at = expiry(ctx.namespace, op.ttl, ts)
    delta = entry.sadd(ts, entry.actor(ctx.node_id, ts), members, expires_at, now)
    return Outcome(delta, {"added": len(set(members) - before)}, "sadd", touched)


def srem(op: SRem, current: Entry | None, ctx: CommandContext, clock: ClockReading) -> Outcome:
    members = check_members(op.members, ctx.limits.max_member_bytes)
    refuse_other_kinds(current, SET, clock.now_ms, op.key)
    if current is None or current.orset is None or not current.orset.visible(clock.now_ms):
        return Outcome(None, {"removed": 0}, "srem")
    present = [m for m in members if current.orset.elems.get(m)]
    if not present:
        return Outcome(None, {"removed": 0}, "srem")
    delta = current.srem(clock.ts, present)
    return Outcome(delta, {"removed": len(present)}, "srem", present)


def expire(op: Expire, current: Entry | None, ctx: CommandContext, clock: ClockReading) -> Outcome:
    """Give a live entry a new TTL (0: never expire) without changing its value.

    A register is written again with its own value, meta and vector and the new
    expiry, so it wins over older writes like any write; a counter's or a set's
    expiry is a last-writer-wins register of its own, written alone.
    """
    now = clock.now_ms
    if not ctx.live(current, now):
        raise NotFound(f"{op.key!r} not found in {ctx.namespace.name!r}")
    assert current is not None
    ttl = check_ttl(op.ttl)
    if ttl is None:
        raise BadRequest("expire: ttl is required (seconds; 0 = never expire)")
    ts = clock.ts
    expires_at = None if ttl == 0 else wall_ms(ts) + max(1, int(ttl * 1000))
    kind = current.live_kinds(now)[0]
    if kind == REGISTER:
        delta = _rewrite_register(current, ctx, ts, now, expires_at)
    elif kind == COUNTER:
        delta = Entry(ts, counter=PNCounter(expires_at=expires_at, expiry_ts=ts))
    else:
        delta = Entry(ts, orset=ORSet({}, CausalContext(), expires_at, ts))
    return Outcome(delta, {"expires_at": expires_at}, "ttl")


def _rewrite_register(
    current: Entry, ctx: CommandContext, ts: int, now: int, expires_at: int | None
) -> Entry:
    policy = policy_of(ctx.namespace.policy)
    if current.reg is not None and current.reg.visible(now):
        r = current.reg
        return policy.write(
            current, ts, ctx.node_id, r.value, r.meta, r.vector, expires_at, ctx.agent
        )
    siblings = current.mv.siblings(now) if current.mv is not None else []
    if len(siblings) > 1:
        raise Conflict(
            f"{len(siblings)} concurrent versions; write the value you want kept, then set its TTL"
        )
    v = siblings[0][1]
    return policy.write(current, ts, ctx.node_id, v.value, v.meta, v.vector, expires_at, ctx.agent)
