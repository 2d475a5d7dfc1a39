"""What clients see of an entry: plain maps built from CRDT state at a moment.

`get` returns one of these; `list` and `search` return shortened ones. Only
live parts are shown: expired MV siblings and tombstones never reach a client.
`agent` is the agent that made the entry's latest write (None: a write made
without an agent identity); an MV sibling names its own.
"""

from __future__ import annotations

from typing import Any

from swarmnode.crdt.entry import COUNTER, REGISTER, SET, Entry
from swarmnode.crdt.hlc import wall_ms
from swarmnode.crdt.values import unpack_vector

DECISION_META = "_decision"
"""Meta key under which a decided version records its decision (commands/consensus.py)."""


def entry_view(
    ns: str, key: str, entry: Entry, now_ms: int, *, with_vector: bool = False
) -> dict[str, Any] | None:
    kinds = entry.live_kinds(now_ms)
    if not kinds:
        return None
    view: dict[str, Any] = {"ns": ns, "key": key, "type": kinds[0]}
    if kinds[0] == REGISTER:
        if entry.reg is not None and entry.reg.visible(now_ms):
            r = entry.reg
            view.update(value=r.value, meta=r.meta, ts=r.ts, expires_at=r.expires_at)
            if with_vector:
                view["vector"] = unpack_vector(r.vector)
        else:
            siblings = entry.mv.siblings(now_ms)
            latest = siblings[-1][1]
            meta, decision = _split_decision(latest.meta)
            view.update(value=latest.value, meta=meta, ts=latest.ts, expires_at=latest.expires_at)
            if with_vector:
                view["vector"] = unpack_vector(latest.vector)
            view["siblings"] = [
                {
                    "value": v.value,
                    "meta": _split_decision(v.meta)[0],
                    "ts": v.ts,
                    "expires_at": v.expires_at,
                    "writer": dot[0].split(".")[0],
                    "agent": v.agent,
                }
                for dot, v in siblings
            ]
            view["conflict"] = len(siblings) > 1
            if decision is not None:
                # Decided by the consensus group (commands/consensus.py): which log entry,
                # and the concurrent writes it rejected.
                view["decided"] = decision.get("index")
                view["rejected"] = decision.get("rejected", [])
    elif kinds[0] == COUNTER:
        c = entry.counter
        view.update(value=c.value(), meta=None, ts=entry.ts, expires_at=c.expires_at)
    else:
        s = entry.orset
        view.update(value=s.members(), meta=None, ts=entry.ts, expires_at=s.expires_at)
    view["updated_ms"] = wall_ms(view["ts"])
    view["agent"] = entry.agent
    if len(kinds) > 1:
        view["also"] = kinds[1:]
    return view


def _split_decision(meta: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Any]:
    """A version's own meta, and the consensus decision recorded beside it (or None)."""
    if not meta or DECISION_META not in meta:
        return meta, None
    rest = {k: v for k, v in meta.items() if k != DECISION_META}
    return rest or None, meta[DECISION_META]


def summary_view(ns: str, key: str, entry: Entry, now_ms: int, with_value: bool) -> dict | None:
    """A list item: kind, timestamps and, on request, the value (not for sets)."""
    kinds = entry.live_kinds(now_ms)
    if not kinds:
        return None
    item: dict[str, Any] = {"ns": ns, "key": key, "type": kinds[0], "ts": entry.ts}
    item["expires_at"] = entry.expires_at()
    if with_value and kinds[0] in (REGISTER, COUNTER):
        full = entry_view(ns, key, entry, now_ms)
        item["value"] = full["value"] if full else None
        if full and full.get("meta") is not None:
            item["meta"] = full["meta"]
    return item


__all__ = ["COUNTER", "REGISTER", "SET", "entry_view", "summary_view"]
