"""What every command takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import HybridLogicalClock, wall_ms
from swarmnode.errors import WrongType
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.namespaces import NamespaceDef, check_ttl

ALL = None
"""`members_needed(...) is ALL`: the command needs every member of a set loaded."""


class ClockReading(NamedTuple):
    """The clock as one operation sees it (a named tuple, as `CommandContext`: one of each
    is made for every write, and a frozen dataclass costs three times as much to build).

    `now_ms` is physical wall-clock time: what is visible, what has expired.
    `ts` is the HLC timestamp a write made now gets; the engine draws it from
    its clock without committing it and adopts it only if the command writes,
    so a refused operation leaves the clock as it was.
    """

    now_ms: int
    ts: int

    @classmethod
    def draw(cls, hlc: HybridLogicalClock, physical_ms: int) -> ClockReading:
        last = hlc.last
        ts = hlc.now(physical_ms)
        hlc.last = last
        return cls(physical_ms, ts)


class CommandContext(NamedTuple):
    """Everything besides the entry and the clock a command depends on."""

    node_id: str
    namespace: NamespaceDef
    limits: StoreConfig
    cleared_at: int = 0
    agent: str | None = None
    """The agent the write is made for (None: no agent identity), recorded in the delta."""

    def live(self, entry: Entry | None, now_ms: int) -> bool:
        """Visible now, and not cleared by a namespace delete."""
        return entry is not None and entry.ts > self.cleared_at and entry.visible(now_ms)


@dataclass
class Outcome:
    """What a command decided: the delta to store (None: nothing to write) and the reply."""

    delta: Entry | None
    result: dict[str, Any]
    kind: str
    """The change's kind as watchers see it: put, delete, incr, sadd, srem, ns, expire."""
    touched: list[str] | None = field(default_factory=list)
    """Set members the delta names (ALL: every member), so the engine writes only those."""


def expiry(ns: NamespaceDef, ttl: Any, ts: int) -> int | None:
    """Absolute expiry (ms) of a write at `ts` with `ttl` seconds, or the namespace default."""
    ttl_s = check_ttl(ttl)
    if ttl_s is None:
        ttl_s = ns.ttl
    if not ttl_s:
        return None
    return wall_ms(ts) + max(1, int(ttl_s * 1000))


def refuse_other_kinds(entry: Entry | None, kind: str, now_ms: int, key: str) -> None:
    """Like Redis's WRONGTYPE: a live key of one kind takes no operation of another."""
    if entry is None:
        return
    others = [k for k in entry.live_kinds(now_ms) if k != kind]
    if others:
        raise WrongType(f"{key!r} holds a {others[0]}, not a {kind}")
