"""What one turn of the Raft state machine asks of the runtime: the Ready contract.

The runtime loop, real or simulated, is:

    rd = raft.ready()                     # only when raft.has_ready()
    storage.persist(rd)                   # hard state, snapshot, compaction, entries:
                                          # one durable write transaction
    send(rd.messages)                     # only now: they may depend on what was persisted
    if rd.snapshot: machine.restore(rd.snapshot.data)
    for entry in rd.committed_entries: apply it to the machine
    serve rd.read_states once the machine has applied their index
    raft.advance(rd)

One Ready is outstanding at a time: `ready()` is not called again before
`advance()`. Messages may be stepped in between (while the write is in
flight); what they cause goes into the next Ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from swarmnode.consensus.messages import RaftMessage
from swarmnode.consensus.records import Entry, HardState, Snapshot


class Role(StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the runtime may want to show or act on (who leads; this node's role)."""

    leader: str | None
    role: Role


@dataclass(frozen=True, slots=True)
class ReadState:
    """The answer to `read_index(context)`: a read that starts once the state machine has
    applied `index` is linearizable."""

    context: bytes
    index: int


@dataclass(frozen=True, slots=True)
class Compaction:
    """A snapshot this node took of its own state machine (`Raft.compact`): store it and
    delete the stored entries up to `offset` (the entry at `offset` had term `offset_term`)."""

    snapshot: Snapshot
    offset: int
    offset_term: int


@dataclass
class RaftReady:
    soft_state: SoftState | None = None
    """Set when the leader or this node's role changed."""
    hard_state: HardState | None = None
    """Set when term, vote or commit changed: persist before sending `messages`."""
    snapshot: Snapshot | None = None
    """A snapshot received from the leader: persist it (it replaces the whole stored log),
    then restore the state machine from its data before applying `committed_entries`."""
    compaction: Compaction | None = None
    """A local snapshot to persist, with the log prefix it makes unnecessary."""
    entries: list[Entry] = field(default_factory=list)
    """Entries to append durably; they replace any stored entries from entries[0].index on."""
    messages: list[RaftMessage] = field(default_factory=list)
    """To send once everything above is durable."""
    committed_entries: list[Entry] = field(default_factory=list)
    """To apply to the state machine in order, after persisting. NORMAL entries with empty
    data are a new leader's no-op; CONF entries are already applied by Raft itself."""
    read_states: list[ReadState] = field(default_factory=list)

    def must_persist(self) -> bool:
        return bool(
            self.hard_state is not None
            or self.snapshot is not None
            or self.compaction is not None
            or self.entries
        )
