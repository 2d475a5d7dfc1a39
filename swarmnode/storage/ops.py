"""Write operations the store applies in one group-committed transaction, and what they report.

A client write carries `agent`, the id of the agent that asked for it (None: a
request made without an agent identity); the command layer records it in the
delta, so every replica knows who wrote what (audit) and whom to charge (quotas).

Every change to LMDB is one of these: the clients' writes, states arriving from
peers, the sweeper's expiry and collection, namespace definitions. Keeping them
as plain data is what lets the real runtime hand a batch to the writer thread
and the simulator apply the same batch inline at virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swarmnode.crdt.entry import Entry
from swarmnode.errors import SwarmError


@dataclass
class Put:
    ns: str
    key: str
    value: Any
    meta: dict[str, Any] | None = None
    vector: Any = None
    ttl: float | None = None  # seconds; None = namespace default, 0 = never
    if_absent: bool = False
    if_exists: bool = False
    keep_ttl: bool = False
    agent: str | None = None


@dataclass
class Delete:
    ns: str
    key: str
    agent: str | None = None


@dataclass
class Expire:
    """A new TTL for a live entry, its value unchanged (ttl 0: never expire)."""

    ns: str
    key: str
    ttl: float
    agent: str | None = None


@dataclass
class Incr:
    ns: str
    key: str
    by: int = 1
    ttl: float | None = None
    agent: str | None = None


@dataclass
class SAdd:
    ns: str
    key: str
    members: list[str]
    ttl: float | None = None
    agent: str | None = None


@dataclass
class SRem:
    ns: str
    key: str
    members: list[str]
    agent: str | None = None


@dataclass
class Decided:
    """What the consensus group decided for a conflict: written alike on every replica.

    `payload` is the decision as committed (see `commands/consensus.py`); `index` the
    log index that committed it, which names the decided version's dot, so every
    replica writes the very same delta. `agent` is the winning write's agent (the
    decided version is that write's value), so audit and quotas name its author.
    """

    ns: str
    key: str
    payload: dict[str, Any]
    index: int
    agent: str | None = None


@dataclass
class Merge:
    """A state from a peer: a mutator delta (gossip) or a full state (anti-entropy)."""

    ns: str
    key: str
    state: Entry
    full: bool
    origin: str = "remote"
    """"handoff" for states a former holder handed over (see `placement/handoff.py`)."""


@dataclass
class DefineNs:
    ns: str
    args: dict[str, Any]
    agent: str | None = None


@dataclass
class DeleteNs:
    ns: str
    agent: str | None = None


@dataclass
class Sweep:
    """Strip expired entries and collect dead ones whose time has come (at most `limit`)."""

    limit: int = 1000


@dataclass
class Purge:
    """Drop entries a namespace delete cleared (at most `limit` per call)."""

    ns: str
    limit: int = 1000


@dataclass
class DropKeys:
    """Drop entries this node handed over to their partition's owners.

    Each (key, digest) is dropped only if the entry's digest is still that one: an
    entry written since it was handed over stays for the next handover. Nothing is
    gossiped and no tombstone is left: the owners hold the data.
    """

    ns: str
    items: list[tuple[str, bytes]]


@dataclass
class SetMeta:
    """A small value the node keeps with its data (e.g. the placement view it settled on)."""

    name: str
    value: bytes


Op = (
    Put
    | Delete
    | Expire
    | Incr
    | SAdd
    | SRem
    | Decided
    | Merge
    | DefineNs
    | DeleteNs
    | Sweep
    | Purge
    | DropKeys
    | SetMeta
)


@dataclass
class Change:
    """One entry changed: what the node must tell the Merkle tree, gossip and watchers."""

    ns: str
    key: str
    kind: str  # put | delete | incr | sadd | srem | merge | expire | collect | purge | ns | handoff
    origin: str  # local | remote | sweep | handoff
    old_digest: bytes | None
    new_digest: bytes | None
    visible_before: bool
    visible_after: bool
    delta: Entry | None = None  # local writes only: what to gossip
    seq: int = 0
    # The entry as this change left it (None when dropped), and as it was just
    # before (local writes and merges). For sets only the members the change
    # touched are loaded; read the store for all of them.
    entry: Entry | None = None
    before: Entry | None = None
    # Bytes of the record this change wrote (0 when dropped): what holding the
    # change costs, for bounds on what watchers may keep unread.
    size: int = 0
    # `delta` encoded, when the engine already had those bytes (a write whose delta is
    # the whole new entry): gossip sends them rather than encoding the delta again.
    payload: bytes | None = None
    # The key's Merkle leaf under the store's `leaf_bits`, which the engine hashed.
    leaf: int | None = None


@dataclass
class OpResult:
    value: Any = None
    error: SwarmError | None = None
    changes: list[Change] = field(default_factory=list)
    more: bool = False  # sweep/purge: work remains
    note: str | None = None  # merge: why a state was not taken (replication/merge.py)
