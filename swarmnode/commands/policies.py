"""Register writes per namespace policy.

A namespace's policy decides what a `put` does to a register:
- `lww`: last-writer-wins, ordered by (HLC timestamp, node id, payload bytes);
  concurrent writes resolve to one value on every replica.
- `mv`: a multi-value register: concurrent writes are all kept as siblings,
  and a write supersedes exactly the siblings its writer had seen.
- `consensus`: stored as `mv`, so a write is accepted locally and spreads by
  gossip even under a partition; concurrent siblings are then escalated to
  the consensus group, which decides one of them (see `consensus/`).

Counters and sets are CRDTs whose merge is already what users want, so they
behave the same under every policy.
"""

from __future__ import annotations

from typing import Any, Protocol

from swarmnode.crdt.entry import Entry
from swarmnode.crdt.mvreg import Version


class RegisterPolicy(Protocol):
    name: str
    multi_value: bool

    def write(
        self,
        base: Entry,
        ts: int,
        node_id: str,
        value: Any,
        meta: dict[str, Any] | None,
        vector: bytes | None,
        expires_at: int | None,
        agent: str | None = None,
    ) -> Entry:
        """The delta of writing this register version over `base` for `agent`."""
        ...


class LastWriterWins:
    name = "lww"
    multi_value = False

    def write(
        self,
        base: Entry,
        ts: int,
        node_id: str,
        value: Any,
        meta: dict[str, Any] | None,
        vector: bytes | None,
        expires_at: int | None,
        agent: str | None = None,
    ) -> Entry:
        return base.put_lww(ts, node_id, value, meta, vector, expires_at)


class MultiValue:
    name = "mv"
    multi_value = True

    def write(
        self,
        base: Entry,
        ts: int,
        node_id: str,
        value: Any,
        meta: dict[str, Any] | None,
        vector: bytes | None,
        expires_at: int | None,
        agent: str | None = None,
    ) -> Entry:
        version = Version(value, ts, meta, vector, expires_at, agent)
        return base.put_mv(ts, base.actor(node_id, ts), version)


class Consensus(MultiValue):
    name = "consensus"


POLICIES: dict[str, RegisterPolicy] = {
    p.name: p for p in (LastWriterWins(), MultiValue(), Consensus())
}


def policy_of(name: str) -> RegisterPolicy:
    return POLICIES.get(name, POLICIES["lww"])
