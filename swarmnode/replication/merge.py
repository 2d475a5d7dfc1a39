"""Whether a state that arrived from a peer may be joined into the local one.

Pure rules, applied by the storage engine before it joins a replicated state:

- A state written at or before its namespace's `cleared_at` (a namespace
  delete) is gone everywhere and is ignored.
- A state that is dead and collectable counts as absent: it is ignored, just
  as the local copy would be dropped.
- A register stripped (by expiry) on a peer whose clock runs further ahead
  than the max offset is refused as clock skew: taking it would hide the
  value here before its time. Anti-entropy brings it again later.
- The causal horizon: a gossip delta that carries live data and is older than
  the tombstone grace is refused. Such a delta could only be a replay (an
  attacker re-sending captured datagrams) or a duplicate the network held
  back for longer than a tombstone lives; if the key was deleted meanwhile
  and its tombstone collected, taking it would bring the deleted data back.
  Gossip forwards a delta within seconds, so no legitimate delta is that old;
  a replica that was really cut off longer than the grace comes back through
  anti-entropy's full states, which this rule does not touch (that case is
  the documented limit of tombstone collection). Deltas without live data
  (deletes, expiry strips) are harmless and always taken.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import ClockSkewError, wall_ms

ALL = None

IGNORED_CLEARED = "cleared"
IGNORED_COLLECTABLE = "collectable"
REFUSED_STALE = "stale_delta"


def admit(
    state: Entry,
    *,
    full: bool,
    now_ms: int,
    cleared_at: int,
    grace_ms: int,
    max_offset_ms: int,
) -> str | None:
    """None when `state` may be joined; otherwise why it is ignored.

    Raises ClockSkewError for a register stripped by a clock too far ahead.
    """
    if state.ts <= cleared_at:
        return IGNORED_CLEARED
    if state.collectable(now_ms, grace_ms):
        return IGNORED_COLLECTABLE
    reg = state.reg
    stripped = reg is not None and reg.deleted and reg.expires_at is not None
    if stripped and reg.expires_at > now_ms + max_offset_ms:
        raise ClockSkewError(reg.expires_at, now_ms, max_offset_ms)
    if not full and wall_ms(state.ts) + grace_ms <= now_ms and state.visible(now_ms):
        return REFUSED_STALE
    return None


def members_named(state: Entry, *, full: bool) -> Iterable[str] | None:
    """The set members a join must load: a delta names every member it touches, a full
    state does not (ALL)."""
    if full:
        return ALL
    return list(state.orset.elems) if state.orset is not None else ()
