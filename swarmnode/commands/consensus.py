"""Conflicts in `consensus` namespaces: the proposal a replica makes, the version every
replica writes once the group decided.

A `consensus` namespace stores multi-value registers, so concurrent writes
survive as siblings. A replica that sees siblings proposes a decision to the
consensus group: the newest sibling (by timestamp, then dot) wins, and the
proposal lists every sibling it covers. The group commits the first proposal
for a conflict; every replica then writes the same delta: one version with
the winner's value, meta and vector, under a dot named after the log index
(`~decided`, index), whose causal context covers every sibling of the
conflict and every earlier decided version. It supersedes exactly those, so
writes that were concurrent with the decision survive (and conflict anew),
and since the delta depends only on what was committed, every replica holds
the same state. Replicas that saw different sibling sets (gossip still on its
way) propose different conflicts; each is decided once, and the decision
committed last covers the earlier ones, so they converge on one version. The losing
writes stay visible as `rejected` (value, writer, timestamp) in `get`, and
the decision's index as `decided`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

from swarmnode.commands.base import ClockReading, CommandContext, Outcome
from swarmnode.crdt.causal import CausalContext
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.mvreg import MVRegister, Version
from swarmnode.crdt.values import canonical
from swarmnode.errors import BadRequest
from swarmnode.storage.ops import Decided
from swarmnode.storage.views import DECISION_META

DECIDED_ACTOR = "~decided"
"""The actor of decided versions: no node id starts with `~`."""


def conflict_of(ns: str, key: str, entry: Entry, now_ms: int | None) -> dict[str, Any] | None:
    """The decision this replica proposes for `entry`'s siblings, or None (no conflict).

    `now_ms` None counts every sibling, expired or not (a node has no wall clock; covering
    an expired sibling too is harmless)."""
    if entry.mv is None:
        return None
    siblings = entry.mv.siblings(now_ms)
    if len(siblings) < 2:
        return None
    (winner_dot, winner), losers = siblings[-1], siblings[:-1]
    return {
        "ns": ns,
        "key": key,
        "winner": list(winner_dot),
        "covered": sorted([list(dot) for dot, _ in siblings]),
        "value": winner.value,
        "meta": {k: v for k, v in (winner.meta or {}).items() if k != DECISION_META} or None,
        "vector": winner.vector,
        "ts": max(v.ts for _, v in siblings),
        "expires_at": winner.expires_at,
        "agent": winner.agent,
        "rejected": [
            {"value": v.value, "writer": dot[0].split(".")[0], "agent": v.agent, "ts": v.ts}
            for dot, v in losers
        ],
    }


def conflict_id(proposal: dict[str, Any]) -> str:
    """Names a conflict by the siblings it covers: every replica that sees them agrees."""
    raw = msgpack.packb([proposal["ns"], proposal["key"], proposal["covered"]])
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def decided(
    op: Decided, current: Entry | None, ctx: CommandContext, clock: ClockReading
) -> Outcome:
    p = op.payload
    try:
        covered = [(str(a), int(c)) for a, c in p["covered"]]
        meta = dict(p.get("meta") or {})
        meta[DECISION_META] = {"index": op.index, "rejected": list(p.get("rejected") or [])}
        # Canonical, as every stored value is: a replica that receives this version
        # by gossip re-encodes it from its decoded form, and equal states must hash
        # alike on every replica for anti-entropy to see them as equal.
        version = Version(
            canonical(p["value"]),
            int(p["ts"]),
            canonical(meta),
            p.get("vector"),
            p.get("expires_at"),
            op.agent,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"malformed decision: {exc!r}") from None
    dot = (DECIDED_ACTOR, op.index)
    # Every earlier decided version too (`~decided` up to this index): replicas that saw
    # different sibling sets propose different decisions, and the latest committed one
    # supersedes the others instead of standing beside them as a new conflict.
    context = CausalContext({DECIDED_ACTOR: op.index}, covered)
    delta = Entry(version.ts, mv=MVRegister({dot: version}, context))
    return Outcome(delta, {"decided": op.index}, "decide")
