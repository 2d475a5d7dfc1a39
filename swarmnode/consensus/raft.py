"""The Raft consensus algorithm as a pure state machine, in the shape of etcd-io/raft.

Inputs: `tick()` (one logical tick; the runtime calls it every
`config.tick_interval`), `step(msg)` (a message from a peer), `propose(data)`,
`propose_conf_change(change)`, `read_index(context)` and `compact(index,
data)`. Output: `ready()`, a `RaftReady` saying what to persist, send, apply
and answer, acknowledged by `advance(rd)` (see `ready.py` for the contract).
Nothing here touches a socket, a clock or the global random generator; the
randomized election timeouts come from the `random.Random` handed in, so a
seeded simulation replays exactly.

What it implements, with the paper's sections:
- leader election with randomized timeouts (5.2), Pre-Vote and check-quorum
  (thesis 9.6): a node that heard from a leader within the minimum election
  timeout ignores vote requests, and a leader that has not heard from a quorum
  for that long steps down, so a node rejoining after a partition cannot
  depose a healthy leader;
- log replication (5.3) with batching and flow control (`progress.py`), the
  commit rule for entries of earlier terms (5.4.2, Figure 8: a leader counts
  replicas only for entries of its own term; it appends a no-op at the start
  of its term to get there);
- snapshots (7): `compact` takes the state machine's bytes; a follower behind
  the compacted log gets them in chunks (InstallSnapshot with offsets);
- membership changes one server at a time (thesis 4.1), through the log; a
  change takes effect when it is committed (as etcd's apply-time rule, with
  commit as the moment of application), and a leader proposes none until the
  previous one is committed and it has committed an entry of its own term
  (the fix for the single-server-change bug reported on raft-dev in 2015);
  learners receive the log but do not vote;
- ReadIndex (thesis 6.4): a read index is the leader's commit index once it
  has committed an entry of its term, confirmed by a heartbeat round answered
  by a quorum; followers forward read requests to their leader.

Proposals are not forwarded: a follower raises `NotLeader` with its leader's
id, and the runtime sends the request there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.log import RaftLog
from swarmnode.consensus.messages import (
    MAX_CONTEXT_BYTES,
    MAX_ENTRY_BYTES,
    Append,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    RaftMessage,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotResponse,
    VoteRequest,
    VoteResponse,
)
from swarmnode.consensus.progress import (
    SNAPSHOT_RETRY_ROUNDS,
    STALL_ROUNDS,
    Progress,
    ProgressState,
)
from swarmnode.consensus.ready import Compaction, RaftReady, ReadState, Role, SoftState
from swarmnode.consensus.records import (
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
    SnapshotMeta,
    decode_conf_change,
    encode_conf_change,
)
from swarmnode.consensus.storage import RaftStorage


class NotLeader(Exception):
    """This node cannot take the request; `leader` is the node that can, if known."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")
        self.leader = leader


class ProposalDropped(Exception):
    """The leader refused a proposal; the message says why. Retrying later may succeed."""


@dataclass
class _PendingRead:
    context: bytes
    index: int
    seq: int
    origin: str


@dataclass
class _SnapshotAssembly:
    key: tuple[str, int, int, int, int]
    data: bytearray


class Raft:
    def __init__(
        self, node_id: str, config: RaftConfig, storage: RaftStorage, rng: random.Random
    ) -> None:
        self.id = node_id
        self.cfg = config
        self.rng = rng
        stored = storage.load()
        hs = stored.hard_state
        self.log = RaftLog(
            stored.snapshot, stored.offset, stored.offset_term, stored.entries, hs.commit
        )
        self.term = hs.term
        self.vote = hs.vote
        self.lead: str | None = None
        self.role = Role.FOLLOWER
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = 0
        self._reset_election_timer()
        self.votes: dict[str, bool] = {}
        self.prs: dict[str, Progress] = {}
        self.pending_conf_index = 0
        self.uncommitted_bytes = 0
        self.read_seq = 0
        self._read_round_open = False
        self._pending_reads: list[_PendingRead] = []
        self._reads_before_commit: list[tuple[bytes, str]] = []
        self._leaving = False
        self._assembly: _SnapshotAssembly | None = None
        self.msgs: list[RaftMessage] = []
        self.read_states: list[ReadState] = []
        self._pending_snapshot: Snapshot | None = None
        self._pending_compaction: Compaction | None = None
        self._prev_hard = hs
        self._prev_soft = SoftState(None, Role.FOLLOWER)
        self._outstanding = False
        self.counters = {"refused_snapshots": 0, "misdirected": 0, "refused_reads": 0}
        self.conf = stored.snapshot.meta.conf
        self.conf_index = stored.snapshot.meta.index
        self._apply_committed_conf(self.conf_index + 1, self.log.committed)

    # ---- inputs -------------------------------------------------------------------------

    def tick(self) -> None:
        """One logical tick of time."""
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_timeout:
            self.election_elapsed = 0
            if self._promotable():
                self._campaign(pre=self.cfg.pre_vote)

    def campaign(self) -> None:
        """Start an election now (as a timeout would), e.g. to test or to hurry a new group."""
        if self.role is not Role.LEADER and self._promotable():
            self._campaign(pre=self.cfg.pre_vote)

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append a command for the state machine; returns its (index, term). It is applied
        once it comes back in `committed_entries` at that index with that term."""
        self._check_can_propose()
        if len(data) > MAX_ENTRY_BYTES:
            raise ProposalDropped(f"entry of {len(data)} bytes exceeds {MAX_ENTRY_BYTES}")
        if self.uncommitted_bytes + len(data) > self.cfg.max_uncommitted_bytes:
            raise ProposalDropped("too much uncommitted data; the group is not keeping up")
        return self._append_new(EntryKind.NORMAL, data)

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        """Propose one membership change. Refused while another is not yet committed, and
        when it would leave the group without voters."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.committed:
            raise ProposalDropped("a configuration change is still pending")
        conf = self.conf
        node = change.node
        if change.op == "init" or node is None:
            raise ProposalDropped("only add_voter, add_learner and remove can be proposed")
        if change.op == "add_voter" and node in conf.voters:
            raise ProposalDropped(f"{node} is already a voter")
        if change.op == "add_learner" and node in conf.learners:
            raise ProposalDropped(f"{node} is already a learner")
        if change.op == "remove" and node not in conf.members():
            raise ProposalDropped(f"{node} is not in the configuration")
        if not change.apply(conf).voters:
            raise ProposalDropped("the change would leave no voter")
        index, term = self._append_new(EntryKind.CONF, encode_conf_change(change))
        self.pending_conf_index = index
        return index, term

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; the answer comes back as a `ReadState` with
        this context (on this node's Ready). Raises `NotLeader` when no leader is known.
        On a follower the request goes to the leader; a lost request is never answered,
        so the runtime times out and retries."""
        if len(context) > MAX_CONTEXT_BYTES:
            raise ValueError(f"read context longer than {MAX_CONTEXT_BYTES} bytes")
        if self.role is Role.LEADER:
            if self._leaving:
                raise NotLeader(None)
            if not self._leader_read(context, self.id):
                raise ProposalDropped("too many reads waiting")
        elif self.lead is None:
            raise NotLeader(None)
        else:
            self._send(ReadIndexRequest(self.id, self.lead, self.term, context))

    def compact(self, index: int, data: bytes) -> None:
        """Record a snapshot of the state machine taken after applying `index`; the log up
        to `config.snapshot_trailing_entries` before it is dropped, durably with the next
        Ready (`compaction`)."""
        if not self.log.snapshot.meta.index < index <= self.log.applied:
            raise ValueError(
                f"snapshot index {index} must be after the last snapshot "
                f"({self.log.snapshot.meta.index}) and applied ({self.log.applied})"
            )
        meta = SnapshotMeta(index, self._term_at(index), self._conf_at(index))
        snapshot = Snapshot(meta, data)
        self.log.compact(snapshot, self.cfg.snapshot_trailing_entries)
        self._pending_compaction = Compaction(snapshot, self.log.offset, self.log.offset_term)

    @property
    def applied(self) -> int:
        """Index of the last entry handed out in a Ready that was advanced (applied)."""
        return self.log.applied

    @property
    def committed(self) -> int:
        return self.log.committed

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot (its data rebuilds the state machine at start-up; committed
        entries after `snapshot.meta.index` then come in Readies)."""
        return self.log.snapshot

    def snapshot_due(self) -> bool:
        """Whether enough entries were applied since the last snapshot to take another."""
        return self.log.applied - self.log.snapshot.meta.index >= self.cfg.snapshot_threshold

    def step(self, msg: RaftMessage) -> None:
        """Take one message from a peer (already decoded and checked by `messages.decode`)."""
        if msg.to != self.id:
            self.counters["misdirected"] += 1
            return
        if msg.term > self.term:
            if isinstance(msg, VoteRequest) and self._in_lease():
                return
            # A pre-vote, or a pre-vote granted for our next term, changes no term.
            keeps_term = isinstance(msg, VoteRequest | VoteResponse) and msg.pre
            if not keeps_term or (isinstance(msg, VoteResponse) and msg.reject):
                from_leader = isinstance(msg, Append | Heartbeat | SnapshotChunk)
                elapsed = self.election_elapsed
                self._become_follower(msg.term, msg.frm if from_leader else None)
                if not from_leader:
                    # Figure 2: only a leader's message or a granted vote resets the
                    # election timer; a higher term alone does not postpone an election.
                    self.election_elapsed = elapsed
        elif msg.term < self.term:
            self._step_stale(msg)
            return
        match msg:
            case VoteRequest():
                self._handle_vote_request(msg)
            case VoteResponse():
                self._handle_vote_response(msg)
            case Append() | Heartbeat() | SnapshotChunk():
                self._step_from_leader(msg)
            case AppendResponse():
                self._handle_append_response(msg)
            case HeartbeatResponse():
                self._handle_heartbeat_response(msg)
            case SnapshotResponse():
                self._handle_snapshot_response(msg)
            case ReadIndexRequest():
                if self.role is Role.LEADER and not self._leaving:
                    self._take_forwarded_read(msg)
            case ReadIndexResponse():
                if self.role is not Role.LEADER:
                    self.read_states.append(ReadState(msg.context, msg.index))

    # ---- the Ready contract --------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether `ready()` has anything to hand out (always False while one is out)."""
        if self._outstanding:
            return False
        if self.msgs or self.read_states or self._pending_snapshot or self._pending_compaction:
            return True
        log, hard, soft = self.log, self._prev_hard, self._prev_soft
        return (
            log.stable < log.last_index()
            or self._apply_from() <= log.committed
            or (hard.term, hard.vote, hard.commit) != (self.term, self.vote, log.committed)
            or soft.leader != self.lead
            or soft.role is not self.role
        )

    def ready(self) -> RaftReady:
        """Everything to do now. Call `advance` with it once done, before the next `ready`."""
        if self._outstanding:
            raise RuntimeError("ready() called again before advance()")
        self._outstanding = True
        log, hard, soft = self.log, self._prev_hard, self._prev_soft
        rd = RaftReady(
            snapshot=self._pending_snapshot,
            compaction=self._pending_compaction,
            messages=self.msgs,
            read_states=self.read_states,
        )
        self._pending_snapshot = self._pending_compaction = None
        self.msgs, self.read_states = [], []
        if soft.leader != self.lead or soft.role is not self.role:
            rd.soft_state = self._prev_soft = self._soft_state()
        if (hard.term, hard.vote, hard.commit) != (self.term, self.vote, log.committed):
            rd.hard_state = self._prev_hard = self._hard_state()
        if log.stable < log.last_index():
            rd.entries = log.unstable_entries()
        log.handed_out()
        start = self._apply_from()
        if start <= log.committed:
            rd.committed_entries = log.slice(start, log.committed + 1, self.cfg.max_apply_bytes)
        self._read_round_open = False
        return rd

    def advance(self, rd: RaftReady) -> None:
        """The Ready was carried out: persisted, sent, applied."""
        if not self._outstanding:
            raise RuntimeError("advance() without an outstanding ready()")
        self._outstanding = False
        if rd.snapshot is not None:
            self.log.applied = max(self.log.applied, rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
        if rd.committed_entries:
            self.log.applied = max(self.log.applied, rd.committed_entries[-1].index)
        if self.role is Role.LEADER and self._maybe_commit():
            self._broadcast_append()

    def status(self) -> dict[str, Any]:
        """A snapshot of the node's Raft state for stats and debugging."""
        status: dict[str, Any] = {
            "id": self.id,
            "role": str(self.role),
            "term": self.term,
            "vote": self.vote,
            "leader": self.lead,
            "commit": self.log.committed,
            "applied": self.log.applied,
            "last_index": self.log.last_index(),
            "last_term": self.log.last_term(),
            "stable": self.log.stable,
            "snapshot_index": self.log.snapshot.meta.index,
            "first_index": self.log.first_index(),
            "voters": sorted(self.conf.voters),
            "learners": sorted(self.conf.learners),
            "conf_index": self.conf_index,
            "pending_reads": len(self._pending_reads) + len(self._reads_before_commit),
            "snapshot_bytes_received": len(self._assembly.data) if self._assembly else 0,
            "counters": dict(self.counters),
        }
        if self.role is Role.LEADER:
            status["progress"] = {
                node: {"match": pr.match, "next": pr.next, "state": str(pr.state)}
                for node, pr in sorted(self.prs.items())
            }
            status["uncommitted_bytes"] = self.uncommitted_bytes
            status["leaving"] = self._leaving
        return status

    # ---- roles ---------------------------------------------------------------------------

    def _soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _promotable(self) -> bool:
        return self.id in self.conf.voters

    def _in_lease(self) -> bool:
        """Heard from a live leader within the minimum election timeout (check-quorum)."""
        return (
            self.cfg.check_quorum
            and self.lead is not None
            and self.election_elapsed < self.cfg.election_ticks_min
        )

    def _reset_election_timer(self) -> None:
        self.election_elapsed = 0
        self.randomized_timeout = self.rng.randint(
            self.cfg.election_ticks_min, self.cfg.election_ticks_max
        )

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.lead = None
        self._reset_election_timer()
        self.heartbeat_elapsed = 0
        self.votes = {}
        self.prs = {}
        self._pending_reads = []
        self._reads_before_commit = []
        self._leaving = False

    def _become_follower(self, term: int, lead: str | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead

    def _campaign(self, pre: bool) -> None:
        if pre:
            self._reset(self.term)
            self.role = Role.PRE_CANDIDATE
            term = self.term + 1
        else:
            self._reset(self.term + 1)
            self.role = Role.CANDIDATE
            self.vote = self.id
            term = self.term
        if self._poll(self.id, True, pre):
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for voter in sorted(self.conf.voters):
            if voter != self.id:
                self._send(VoteRequest(self.id, voter, term, last_index, last_term, pre))

    def _poll(self, node: str, granted: bool, pre: bool) -> bool:
        """Count a vote; returns True once the election is decided."""
        if node in self.conf.voters:
            self.votes.setdefault(node, granted)
        quorum = self.conf.quorum()
        yes = sum(1 for v in self.votes.values() if v)
        no = len(self.votes) - yes
        if yes >= quorum:
            if pre:
                self._campaign(pre=False)
            else:
                self._become_leader()
            return True
        if no > len(self.conf.voters) - quorum:
            self._become_follower(self.term, None)
            return True
        return False

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        last = self.log.last_index()
        for node in self.conf.members():
            if node != self.id:
                self.prs[node] = Progress(next=last + 1)
        self.uncommitted_bytes = 0
        self._append_entries([Entry(last + 1, self.term, EntryKind.NORMAL, b"")])
        self.pending_conf_index = self.log.last_index()
        self._broadcast_append()

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        if self._leaving:
            raise NotLeader(None)

    def _append_new(self, kind: EntryKind, data: bytes) -> tuple[int, int]:
        entry = Entry(self.log.last_index() + 1, self.term, kind, data)
        self._append_entries([entry])
        self.uncommitted_bytes += len(data)
        self._broadcast_append()
        return entry.index, entry.term

    def _append_entries(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        if self._maybe_commit():
            self._broadcast_append()

    # ---- leader --------------------------------------------------------------------------

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks_min:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                self._become_follower(self.term, None)
                return
            for pr in self.prs.values():
                pr.recent_active = False
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._broadcast_heartbeat()

    def _quorum_active(self) -> bool:
        active = sum(
            1
            for voter in self.conf.voters
            if voter == self.id or (voter in self.prs and self.prs[voter].recent_active)
        )
        return active >= self.conf.quorum()

    def _broadcast_append(self) -> None:
        for node in sorted(self.prs):
            self._send_append(node, allow_empty=True)

    def _broadcast_heartbeat(self) -> None:
        for node in sorted(self.prs):
            pr = self.prs[node]
            if pr.state is ProgressState.SNAPSHOT:
                pr.snap_rounds += 1
            commit = min(pr.match, self.log.committed)
            pr.sent_commit = max(pr.sent_commit, commit)
            self._send(Heartbeat(self.id, node, self.term, commit, self.read_seq))

    def _send_append(self, node: str, allow_empty: bool) -> bool:
        """Send `node` what it lacks, within the flow-control limits; True if anything went."""
        pr = self.prs[node]
        if pr.is_paused(self.cfg.max_inflight_appends):
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None or prev_index < self.log.offset:
            self._send_snapshot_chunk(node, pr)
            return True
        last = self.log.last_index()
        entries: list[Entry] = []
        if pr.next <= last:
            hi = min(last + 1, pr.next + self.cfg.max_append_entries)
            entries = self.log.slice(pr.next, hi, self.cfg.max_append_bytes)
        if not entries and not allow_empty:
            return False
        self._send(
            Append(
                self.id,
                node,
                self.term,
                prev_index,
                prev_term,
                self.log.committed,
                tuple(entries),
            )
        )
        pr.sent(prev_index + len(entries), len(entries))
        pr.sent_commit = max(pr.sent_commit, min(self.log.committed, prev_index + len(entries)))
        return True

    def _send_snapshot_chunk(self, node: str, pr: Progress) -> None:
        snapshot = self.log.snapshot
        if pr.state is not ProgressState.SNAPSHOT or pr.snap_index != snapshot.meta.index:
            pr.become_snapshot(snapshot.meta.index)
        start = pr.snap_offset
        chunk = snapshot.data[start : start + self.cfg.snapshot_chunk_bytes]
        size = len(snapshot.data)
        self._send(SnapshotChunk(self.id, node, self.term, snapshot.meta, start, size, chunk))
        pr.snap_rounds = 0

    def _handle_append_response(self, msg: AppendResponse) -> None:
        pr = self.prs.get(msg.frm) if self.role is Role.LEADER else None
        if pr is None:
            return
        pr.recent_active = True
        if msg.reject:
            hint = msg.hint_index
            if msg.hint_term > 0:
                hint, _ = self.log.conflict_hint(msg.hint_index, msg.hint_term)
            if pr.maybe_decrease(msg.index, hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(msg.frm, allow_empty=True)
            return
        updated = pr.maybe_update(msg.index)
        if not updated and not (pr.state is ProgressState.PROBE and pr.match == msg.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.snap_index:
            pr.become_probe()
        if self._maybe_commit():
            self._broadcast_append()
        elif self.role is Role.LEADER:
            while msg.frm in self.prs and self._send_append(msg.frm, allow_empty=False):
                pass
            if msg.frm in self.prs and pr.sent_commit < min(self.log.committed, pr.match):
                self._send_append(msg.frm, allow_empty=True)

    def _handle_heartbeat_response(self, msg: HeartbeatResponse) -> None:
        pr = self.prs.get(msg.frm) if self.role is Role.LEADER else None
        if pr is None:
            return
        pr.recent_active = True
        pr.read_acked = max(pr.read_acked, msg.read_seq)
        pr.commit_known = max(pr.commit_known, msg.commit)
        last = self.log.last_index()
        if pr.state is ProgressState.PROBE:
            pr.probe_sent = False
            if pr.match < last:
                self._send_append(msg.frm, allow_empty=False)
        elif pr.state is ProgressState.REPLICATE:
            pr.stalled = pr.stalled + 1 if pr.inflight else 0
            if pr.stalled >= STALL_ROUNDS:
                pr.become_probe()
                self._send_append(msg.frm, allow_empty=True)
        elif pr.snap_rounds >= SNAPSHOT_RETRY_ROUNDS:
            self._send_snapshot_chunk(msg.frm, pr)
        self._release_confirmed_reads()
        if self._leaving:
            self._maybe_finish_leaving()

    def _handle_snapshot_response(self, msg: SnapshotResponse) -> None:
        pr = self.prs.get(msg.frm) if self.role is Role.LEADER else None
        if pr is None:
            return
        pr.recent_active = True
        if msg.done:
            pr.maybe_update(msg.index)
            if pr.state is ProgressState.SNAPSHOT:
                pr.become_probe()
            if self._maybe_commit():
                self._broadcast_append()
            elif msg.frm in self.prs:
                self._send_append(msg.frm, allow_empty=True)
            return
        if pr.state is not ProgressState.SNAPSHOT or msg.index != pr.snap_index:
            return
        if msg.offset <= len(self.log.snapshot.data):
            pr.snap_offset = msg.offset
            self._send_snapshot_chunk(msg.frm, pr)

    def _maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum of voters holds, for an entry of this
        term (Figure 8: entries of earlier terms are committed only by this rule)."""
        voters = self.conf.voters
        if not voters:
            return False
        matches = sorted(
            (self.log.stable if v == self.id else self.prs[v].match if v in self.prs else 0)
            for v in voters
        )
        candidate = matches[len(matches) - self.conf.quorum()]
        if candidate > self.log.committed and self.log.term(candidate) == self.term:
            self._commit_to(candidate)
            return True
        return False

    def _leader_read(self, context: bytes, origin: str) -> bool:
        """Start a read for `origin`; False when too many reads are waiting already."""
        waiting = len(self._pending_reads) + len(self._reads_before_commit)
        if waiting >= self.cfg.max_pending_reads:
            return False
        if self.log.term(self.log.committed) != self.term:
            self._reads_before_commit.append((context, origin))
            return True
        if self.conf.voters == {self.id}:
            self._answer_read(context, origin, self.log.committed)
            return True
        if not self._read_round_open:
            self.read_seq += 1
            self._read_round_open = True
            self._broadcast_heartbeat()
        self._pending_reads.append(_PendingRead(context, self.log.committed, self.read_seq, origin))
        return True

    def _take_forwarded_read(self, msg: ReadIndexRequest) -> None:
        if not self._leader_read(msg.context, msg.frm):
            self.counters["refused_reads"] += 1

    def _answer_read(self, context: bytes, origin: str, index: int) -> None:
        if origin == self.id:
            self.read_states.append(ReadState(context, index))
        else:
            self._send(ReadIndexResponse(self.id, origin, self.term, context, index))

    def _release_confirmed_reads(self) -> None:
        if not self._pending_reads:
            return
        acked = sorted(
            (self.read_seq if v == self.id else self.prs[v].read_acked if v in self.prs else 0)
            for v in self.conf.voters
        )
        confirmed = acked[len(acked) - self.conf.quorum()]
        while self._pending_reads and self._pending_reads[0].seq <= confirmed:
            read = self._pending_reads.pop(0)
            self._answer_read(read.context, read.origin, read.index)

    def _maybe_finish_leaving(self) -> None:
        """A leader removed from the voters steps down once a quorum of the remaining voters
        knows the removal is committed, so they can elect a leader by the new configuration."""
        informed = sum(
            1
            for v in self.conf.voters
            if v in self.prs and self.prs[v].commit_known >= self.conf_index
        )
        if informed >= self.conf.quorum():
            self._become_follower(self.term, None)

    # ---- follower and candidate ----------------------------------------------------------

    def _step_stale(self, msg: RaftMessage) -> None:
        """A message from an earlier term. A stale leader learns our term from an answer
        (it cannot from our votes: with check-quorum we ignore its vote requests)."""
        if isinstance(msg, Append | Heartbeat | SnapshotChunk):
            if self.cfg.check_quorum or self.cfg.pre_vote:
                self._send(AppendResponse(self.id, msg.frm, self.term, 0))
        elif isinstance(msg, VoteRequest) and msg.pre:
            self._send(VoteResponse(self.id, msg.frm, self.term, True, True))

    def _handle_vote_request(self, msg: VoteRequest) -> None:
        can_vote = (
            self.vote == msg.frm
            or (self.vote is None and self.lead is None)
            or (msg.pre and msg.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(msg.last_index, msg.last_term):
            self._send(VoteResponse(self.id, msg.frm, msg.term, False, msg.pre))
            if not msg.pre:
                self.vote = msg.frm
                self.election_elapsed = 0
        else:
            self._send(VoteResponse(self.id, msg.frm, self.term, True, msg.pre))

    def _handle_vote_response(self, msg: VoteResponse) -> None:
        if msg.pre:
            if self.role is not Role.PRE_CANDIDATE:
                return
            if not msg.reject and msg.term != self.term + 1:
                return
        elif self.role is not Role.CANDIDATE or msg.term != self.term:
            return
        self._poll(msg.frm, not msg.reject, msg.pre)

    def _step_from_leader(self, msg: Append | Heartbeat | SnapshotChunk) -> None:
        if self.role is Role.LEADER:
            return
        if self.role is not Role.FOLLOWER or self.lead != msg.frm:
            self._become_follower(self.term, msg.frm)
        self.election_elapsed = 0
        match msg:
            case Append():
                self._handle_append(msg)
            case Heartbeat():
                self._commit_to(min(msg.commit, self.log.last_index()))
                self._send(
                    HeartbeatResponse(self.id, msg.frm, self.term, msg.read_seq, self.log.committed)
                )
            case SnapshotChunk():
                self._handle_snapshot_chunk(msg)

    def _handle_append(self, msg: Append) -> None:
        log = self.log
        if msg.prev_index < log.committed:
            self._send(AppendResponse(self.id, msg.frm, self.term, log.committed))
            return
        if not log.match_term(msg.prev_index, msg.prev_term):
            hint_index, hint_term = log.conflict_hint(msg.prev_index, msg.prev_term)
            self._send(
                AppendResponse(
                    self.id, msg.frm, self.term, msg.prev_index, True, hint_index, hint_term
                )
            )
            return
        conflict = log.find_conflict(msg.entries)
        if conflict:
            log.append(msg.entries[conflict - msg.prev_index - 1 :])
        last_new = msg.prev_index + len(msg.entries)
        self._commit_to(min(msg.commit, last_new))
        self._send(AppendResponse(self.id, msg.frm, self.term, last_new))

    def _handle_snapshot_chunk(self, msg: SnapshotChunk) -> None:
        meta = msg.meta
        if meta.index <= self.log.committed or self.log.match_term(meta.index, meta.term):
            self._commit_to(meta.index)
            self._reply_snapshot(msg, self.log.committed, 0, done=True)
            return
        if msg.size > self.cfg.max_snapshot_bytes:
            self.counters["refused_snapshots"] += 1
            return
        key = (msg.frm, msg.term, meta.index, meta.term, msg.size)
        if msg.offset == 0:
            self._assembly = _SnapshotAssembly(key, bytearray())
        assembly = self._assembly
        if assembly is None or assembly.key != key or len(assembly.data) != msg.offset:
            wanted = len(assembly.data) if assembly is not None and assembly.key == key else 0
            self._reply_snapshot(msg, meta.index, wanted, done=False)
            return
        assembly.data += msg.data
        if len(assembly.data) < msg.size:
            self._reply_snapshot(msg, meta.index, len(assembly.data), done=False)
            return
        self._assembly = None
        snapshot = Snapshot(meta, bytes(assembly.data))
        self.log.restore(snapshot)
        self.conf = meta.conf
        self.conf_index = meta.index
        self._pending_snapshot = snapshot
        self._pending_compaction = None
        self._reply_snapshot(msg, meta.index, msg.size, done=True)

    def _reply_snapshot(self, msg: SnapshotChunk, index: int, offset: int, done: bool) -> None:
        self._send(SnapshotResponse(self.id, msg.frm, self.term, index, offset, done))

    # ---- commit and configuration --------------------------------------------------------

    def _commit_to(self, index: int) -> None:
        old = self.log.committed
        if not self.log.commit_to(index):
            return
        if self.role is Role.LEADER:
            committed_here = sum(
                len(self.log.entry(i).data)
                for i in range(old + 1, index + 1)
                if self.log.entry(i).term == self.term
            )
            self.uncommitted_bytes = max(0, self.uncommitted_bytes - committed_here)
        self._apply_committed_conf(max(old, self.conf_index) + 1, index)
        committed_own = self.log.term(self.log.committed) == self.term
        if self.role is Role.LEADER and self._reads_before_commit and committed_own:
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for context, origin in waiting:
                self._leader_read(context, origin)

    def _apply_committed_conf(self, lo: int, hi: int) -> None:
        for index in range(lo, hi + 1):
            entry = self.log.entry(index)
            if entry.kind is EntryKind.CONF:
                self._apply_conf(decode_conf_change(entry.data), index)

    def _apply_conf(self, change: ConfChange, index: int) -> None:
        self.conf = change.apply(self.conf)
        self.conf_index = index
        if self.role is not Role.LEADER:
            return
        members = self.conf.members()
        last = self.log.last_index()
        for node in members:
            if node != self.id and node not in self.prs:
                self.prs[node] = Progress(next=last + 1)
        for node in list(self.prs):
            if node not in members:
                del self.prs[node]
        if self.id not in self.conf.voters and not self._leaving:
            self._leaving = True
            self._pending_reads = []
            self._reads_before_commit = []
            self._broadcast_append()
            self._maybe_finish_leaving()

    def _term_at(self, index: int) -> int:
        term = self.log.term(index)
        assert term is not None, f"no term known for index {index}"
        return term

    def _conf_at(self, index: int) -> ConfState:
        """The configuration in force once `index` is committed (for a snapshot at it)."""
        conf = self.log.snapshot.meta.conf
        for i in range(self.log.snapshot.meta.index + 1, index + 1):
            entry = self.log.entry(i)
            if entry.kind is EntryKind.CONF:
                conf = decode_conf_change(entry.data).apply(conf)
        return conf

    def _apply_from(self) -> int:
        """First index whose entry is still to be handed out for applying."""
        return max(self.log.applied, self.log.snapshot.meta.index) + 1

    def _send(self, msg: RaftMessage) -> None:
        self.msgs.append(msg)
