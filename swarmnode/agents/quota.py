"""The `quota` step: a write that would take its agent past its quota is refused.

Usage is what the engine charges the agent for its live entries
(`storage/usage.py`), as of the last commit here: the agent's writes on
every node, as far as they have arrived. A write is admitted when the usage,
plus what the agent's writes still in flight on this node may add, plus what
this write may add, stays within each limit (bytes, entries, vectors). What a
write may add is estimated from its arguments before it runs (value, metadata,
vector, key and a record's fixed overhead); when that estimate would cross a
limit, the entry the write replaces is read, so that overwriting one's own
entry at the limit with one no larger is admitted.

Concurrent writes on different nodes each see the others only once they
arrive, so together they can overrun a quota: by at most what the agent's
writes on the other nodes added during one propagation delay (see
docs/ARCHITECTURE.md, "Quotas"). On one node, in-flight writes are reserved,
so a burst of writes on one node never overruns.

A write to a sharded namespace is checked where it arrives and again on the
owner that runs it (`OwnerQuota`), each against its own usage: what it
holds of the agent's data (docs/ARCHITECTURE.md, "Quotas").
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from swarmnode.agents.access import Principal
from swarmnode.agents.registrations import Roster
from swarmnode.crdt.codec import packb
from swarmnode.crdt.values import pack_vector
from swarmnode.errors import BadRequest, QuotaExceeded
from swarmnode.service.chain import Hooks, Next
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import OpSpec, Request
from swarmnode.storage import layout as L
from swarmnode.storage.usage import vectors_of

RECORD_OVERHEAD = 72
"""Bytes of a register's record beyond its key, value, metadata, vector, writing node's id
and agent's id: digests, due time, flags and the encoding's timestamps and framing
(measured: 71)."""
ACTOR_BYTES = 34
"""A counter's or set's actor name beyond the node id (`.<hex ts>`), with its framing."""
MEMBER_OVERHEAD = 56
"""Bytes of a set member's record beyond the member itself (key hash, one dot)."""
SIZED_OPS = frozenset({"put", "incr", "sadd"})
"""Writes that can grow an agent's usage (delete, srem and expire only shrink or keep it)."""


class QuotaCheck:
    name = "quota"
    ops = SIZED_OPS

    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self._reserved: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])

    def hooks(self, spec: OpSpec) -> Hooks:
        """A check, inline, of whether the write has a quota to keep (`limited`)."""
        return Hooks(enter=self.limited)

    def limited(self, req: Request) -> bool:
        """Whether the request needs this step in full: a write of an agent with a quota."""
        who: Principal | None = req.notes.get("principal")
        reg = who.registration if who is not None else None
        if req.op not in SIZED_OPS or reg is None:
            return False
        quota = reg.quota
        return not (quota.bytes is None and quota.entries is None and quota.vectors is None)

    async def __call__(self, req: Request, nxt: Next) -> Any:
        if not self.limited(req):
            return await nxt(req)
        reg = req.notes["principal"].registration
        quota = reg.quota
        want = self._estimate(req, reg.agent)
        have = self.node.store.catalog.usage_of(reg.agent)
        held = self._reserved[reg.agent]
        total = [h + r + w for h, r, w in zip(have, held, want, strict=True)]
        if _over(total, quota):
            replaced = self._replaced(req, reg.agent)
            total = [t - r for t, r in zip(total, replaced, strict=True)]
            for (name, limit), used, now in zip(
                (("bytes", quota.bytes), ("entries", quota.entries), ("vectors", quota.vectors)),
                total,
                have,
                strict=True,
            ):
                if limit is not None and used > limit:
                    raise QuotaExceeded(
                        f"agent {reg.agent!r} uses {now} of its {limit} {name}; this write "
                        f"would take it to about {used}"
                    )
        for i, w in enumerate(want):
            held[i] += w
        try:
            return await nxt(req)
        finally:
            for i, w in enumerate(want):
                held[i] -= w
            if not any(held):
                self._reserved.pop(reg.agent, None)

    def _estimate(self, req: Request, agent: str) -> list[int]:
        """(bytes, entries, vectors) this write may add at most, from its arguments."""
        a = req.args
        key_bytes = len(a["key"].encode("utf-8", "surrogatepass")) + len(a["ns"]) + 1
        fixed = key_bytes + RECORD_OVERHEAD + len(self.node.store.node_id) + len(agent)
        if req.op == "put":
            size = len(packb(a["value"])) + (len(packb(a["meta"])) if a.get("meta") else 0)
            vector = a.get("vector")
            if vector is not None:
                try:
                    size += len(pack_vector(vector) or b"")
                except (ValueError, TypeError) as exc:
                    raise BadRequest(f"put: vector: {exc}") from None
                return [fixed + size, 1, 1]
            definition = self.node.store.catalog.namespace(a["ns"])
            if definition.embedder is not None and definition.dim is not None:
                # The `embed` step, which runs after this one, will add a vector.
                return [fixed + size + 4 * definition.dim, 1, 1]
            return [fixed + size, 1, 0]
        actor = len(self.node.store.node_id) + ACTOR_BYTES
        if req.op == "incr":
            return [fixed + actor, 1, 0]
        members = a["members"]
        size = sum(
            len(m.encode("utf-8", "surrogatepass")) + actor + MEMBER_OVERHEAD for m in members
        )
        return [fixed + actor + size, 1, 0]

    def _replaced(self, req: Request, agent: str) -> list[int]:
        """What the entry this write replaces costs the agent now (zero if not its own)."""
        a = req.args
        ns, key = a["ns"], a["key"]
        store = self.node.store
        ekey = L.entry_key(ns, key)
        now = self.node.wall_ms()
        with store.read() as txn:
            raw = txn.get(ekey, db=store.db["entries"])
            entry = store.get_header(ns, key, txn) if raw is not None else None
        if entry is None or entry.agent != agent or not store.live_entry(ns, entry, now):
            return [0, 0, 0]
        # A register is replaced whole; a counter's or set's record is rewritten (its
        # members stay, and the estimate counted only the members this write adds).
        return [len(ekey) + len(raw), 1, vectors_of(entry) if req.op == "put" else 0]


class OwnerQuota:
    """The `quota` check again on the owner that runs a write forwarded to it (a sharded
    namespace): its usage holds the partitions it owns, which the node the write arrived
    at may not hold at all, so without this an agent writing through a node that owns
    none of its keys' partitions would never reach its quota."""

    name = "owner_quota"

    def __init__(self, check: QuotaCheck, roster: Roster) -> None:
        self.check = check
        self.roster = roster

    async def __call__(self, req: Request, nxt: Next) -> Any:
        agent = req.notes.get("agent")
        reg = self.roster.get(agent) if isinstance(agent, str) else None
        if reg is None:
            return await nxt(req)
        req.notes["principal"] = Principal.of(reg)
        return await self.check(req, nxt)


def _over(total: list[int], quota: Any) -> bool:
    limits = (quota.bytes, quota.entries, quota.vectors)
    return any(lim is not None and t > lim for t, lim in zip(total, limits, strict=True))
