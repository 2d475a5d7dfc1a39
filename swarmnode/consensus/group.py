"""One node's part in the consensus group, as a sans-IO core the node composes.

It wraps the Raft state machine (`raft.py`) with what a node needs around it:

- Ready contract: `ready()` hands the node a `RaftReady` to persist (the node
  puts it in its own Ready; the runtime makes it durable with the next write
  batch); its messages are held here and released, and its committed entries
  applied, only when `persisted()` says it is durable.
- Bootstrap: a node with no Raft state forms a group only when it has heard
  of no leader, sees at least `bootstrap_expect` live members (itself
  included), is the lowest id among them, and the membership view has been
  stable for `bootstrap_wait`; it starts alone as the only voter. Every other
  node joins when the leader adds it (the leader announces itself to members
  outside the group every `announce_interval`, which also keeps them from
  forming a group of their own). Two groups formed apart (a partitioned start
  with too small a `bootstrap_expect`) are detected and reported, not merged.
- Voters: the leader proposes the single membership change `voters.next_change`
  asks for, about once a second: live members are added as learners and
  promoted up to `max_voters` (an odd number), a voter dead for
  `voter_dead_time` is replaced.
- Clients: `submit(token, command)` proposes a command for the state machine
  (`machine.py`), on the leader directly or through it: a follower forwards
  the command (`cons.fwd`), the leader answers with the index it got
  (`cons.ack`), and the follower answers its client when its own machine
  applies that entry, so the result is the one every replica computed.
  `read(token, ns, key)` is a linearizable read (ReadIndex). A member outside
  the group (beyond the voters and standby learners: it holds no log) sends
  both to the leader that announced itself (`cons.fwd` with `r`, `cons.read`),
  and the leader sends back the result it applied or read (`cons.res`). Whatever is not
  settled within `command_timeout` is answered `unavailable` (the command may
  still take effect: its outcome is unknown).
- Leases: the leader's `LeaseKeeper` proposes `expire` for claims whose lease
  has lapsed; a new leader counts every lease as renewed at its election.
- Decisions: `applied` reports the decisions the machine made (a first
  `decide` for a conflict), for the node to write into its store.
- Observation: a simulator may `attach` a `RaftObserver` (the safety oracles
  of `oracles.py`), told of every step, Ready, persist, send and apply.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgpack

from swarmnode.consensus import messages as raft_messages
from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.leases import LeaseKeeper
from swarmnode.consensus.machine import ABSENT, StateMachine
from swarmnode.consensus.messages import RaftMessage
from swarmnode.consensus.raft import NotLeader, ProposalDropped, Raft
from swarmnode.consensus.ready import RaftReady, Role
from swarmnode.consensus.records import Entry, EntryKind
from swarmnode.consensus.storage import LmdbStorage, RaftStorage, bootstrap
from swarmnode.consensus.voters import MemberView, next_change
from swarmnode.errors import DecodeError, Unavailable

log = logging.getLogger("swarmnode.consensus")

Token = int
Message = dict[str, Any]

FORWARD = "cons.fwd"
ACK = "cons.ack"
ANNOUNCE = "cons.leader"
READ = "cons.read"
RESULT = "cons.res"
MAX_FORWARDED = 10_000
"""Forwarded commands the leader remembers, to answer a duplicate with the entry it already
made instead of proposing the command twice; the oldest are forgotten first."""


@dataclass(frozen=True)
class GroupSettings:
    """What the group needs besides Raft's own timing (see `ConsensusConfig`)."""

    bootstrap_expect: int = 1
    bootstrap_wait: float = 3.0
    announce_interval: float = 1.0
    autopilot_interval: float = 1.0
    command_timeout: float = 5.0


class RaftObserver(Protocol):
    """Told what the group's Raft does, in the order the Ready contract runs it."""

    def started(self, raft: Raft) -> None:
        """A Raft was built from this node's storage (first start, join or restart)."""

    def stepped(self, raft: Raft) -> None:
        """After a tick, a message, a proposal or a persisted Ready."""

    def ready(self, raft: Raft, rd: RaftReady) -> None:
        """A Ready was taken: its entries are about to be written."""

    def persisted(self, rd: RaftReady) -> None:
        """That Ready is durable; its messages leave next."""

    def sent(self, msg: RaftMessage) -> None:
        """A message leaves (after the persist it depends on)."""

    def applying(self, raft: Raft, entry: Entry) -> None:
        """A committed entry is about to be applied."""


@dataclass
class Decided:
    """A decision the machine just made: the first committed proposal for a conflict."""

    index: int
    term: int
    payload: Any


@dataclass
class GroupReady:
    persist: RaftReady | None = None
    messages: list[tuple[str, Message]] = field(default_factory=list)
    """(node id, message) to send now."""
    results: list[tuple[Token, Any]] = field(default_factory=list)
    """(token, result map) or (token, SwarmError) for settled commands and reads."""
    decided: list[Decided] = field(default_factory=list)


@dataclass
class _RemoteRead:
    """An outsider's linearizable read this leader serves."""

    origin: str
    ident: int
    ns: str
    key: str
    deadline: float
    index: int | None = None


@dataclass
class _Waiting:
    deadline: float
    index: int = 0
    term: int = 0
    read: tuple[str, str] | None = None
    read_index: int | None = None


class ConsensusGroup:
    def __init__(
        self,
        node_id: str,
        config: RaftConfig,
        settings: GroupSettings,
        storage: RaftStorage,
        rng: random.Random,
        now: float,
    ) -> None:
        self.id = node_id
        self.cfg = config
        self.settings = settings
        self.storage = storage
        self.rng = rng
        self.raft: Raft | None = None
        self.machine = StateMachine()
        self.keeper = LeaseKeeper(config.lease_expiry_margin)
        self._now = now
        self._next_tick = now
        self._raft_paused = False
        """Raft's ticks were skipped while this node led a group of one (see `_alone`)."""
        self._next_announce = now
        self._next_autopilot = now
        self._stable_since = now
        self._heard_leader: str | None = None
        self._inflight: RaftReady | None = None
        self._outbox: list[tuple[str, Message]] = []
        self._results: list[tuple[Token, Any]] = []
        self._decided: list[Decided] = []
        self._waiting: dict[Token, _Waiting] = {}
        self._by_index: dict[int, list[Token]] = {}
        self._remote: dict[int, list[tuple[str, int, int]]] = {}
        """index -> (origin, request id, term) of outsiders' commands to answer once applied."""
        self._remote_reads: dict[bytes, _RemoteRead] = {}
        self._forwarded: dict[tuple[str, int, bytes], tuple[int, int]] = {}
        """(origin, request id, command digest) -> (index, term) of the entry proposed."""
        self._reads: dict[bytes, Token] = {}
        self._read_seq = 0
        self._observer: RaftObserver | None = None
        self.counters: dict[str, int] = {
            "proposed": 0,
            "forwarded": 0,
            "applied": 0,
            "timeouts": 0,
            "dropped_malformed": 0,
            "foreign_leaders": 0,
            "duplicates": 0,
        }
        if not storage.load().is_empty():
            self._start()

    # --- lifecycle ------------------------------------------------------------------------

    def _start(self) -> None:
        self.raft = Raft(self.id, self.cfg, self.storage, random.Random(self.rng.random()))
        self.machine = StateMachine.restore(self.raft.snapshot.data)
        log.info(
            "event=consensus_started node_id=%s term=%d voters=%s",
            self.id,
            self.raft.term,
            ",".join(sorted(self.raft.conf.voters)),
        )
        if self._observer is not None:
            self._observer.started(self.raft)

    def attach(self, observer: RaftObserver) -> None:
        """Report every step of this node's Raft to `observer` from now on."""
        self._observer = observer
        if self.raft is not None:
            observer.started(self.raft)

    def _stepped(self) -> None:
        if self._observer is not None and self.raft is not None:
            self._observer.stepped(self.raft)

    @property
    def joined(self) -> bool:
        return self.raft is not None

    @property
    def leader(self) -> str | None:
        if self.raft is not None:
            return self.raft.lead
        return self._heard_leader

    @property
    def is_leader(self) -> bool:
        return self.raft is not None and self.raft.role is Role.LEADER

    # --- steps ------------------------------------------------------------------------------

    def tick(self, now: float, members: Mapping[str, MemberView]) -> None:
        """Time passes; `members` is the membership view (this node included, alive)."""
        self._now = now
        view = frozenset(n for n, m in members.items() if m.alive)
        if self.raft is None:
            self._maybe_bootstrap(now, view)
        elif self._alone():
            self._raft_paused = True
            if now >= self._lead_due():
                self._lead(now, members, view)
                self._stepped()
        else:
            if self._raft_paused:
                # The group has a second member (or lost its lead): Raft's clock restarts at
                # this tick, whether the runtime ticked the node meanwhile or slept.
                self._raft_paused = False
                self._next_tick = now
            if now >= self._next_tick:
                ticks = 0
                while now >= self._next_tick and ticks < 10:
                    self.raft.tick()
                    self._next_tick += self.cfg.tick_interval
                    ticks += 1
                if now >= self._next_tick:
                    self._next_tick = now + self.cfg.tick_interval
                if self.is_leader:
                    self._lead(now, members, view)
                self._stepped()
        self._expire(now)

    def _alone(self) -> bool:
        """Leader of a group of one (no other voter or learner). Raft's ticks would only
        time heartbeats to nobody and a quorum check of itself, so they are skipped: a
        lone node then wakes for its leader duties (announce, autopilot, leases) alone."""
        raft = self.raft
        return raft is not None and raft.role is Role.LEADER and raft.conf.members() == {self.id}

    def _lead_due(self) -> float:
        """When `_lead` next has something to do: announce, autopilot or a lease to free."""
        due = min(self._next_announce, self._next_autopilot)
        lease = self.keeper.next_deadline() if self.keeper.leading else None
        return due if lease is None else min(due, lease)

    def view_changed(self, now: float) -> None:
        """A member joined, died, left or came back: the view is not stable yet."""
        self._stable_since = now

    def _maybe_bootstrap(self, now: float, view: frozenset[str]) -> None:
        s = self.settings
        if self._heard_leader is not None or len(view) < s.bootstrap_expect:
            return
        if min(view, default=self.id) != self.id or now - self._stable_since < s.bootstrap_wait:
            return
        bootstrap(self.storage, [self.id])
        log.info("event=consensus_bootstrapped node_id=%s members=%d", self.id, len(view))
        self._start()

    def _lead(self, now: float, members: Mapping[str, MemberView], view: frozenset[str]) -> None:
        raft = self.raft
        assert raft is not None
        if now >= self._next_announce:
            self._next_announce = now + self.settings.announce_interval
            for node in sorted(view - raft.conf.members() - {self.id}):
                self._outbox.append((node, {"t": ANNOUNCE, "f": self.id, "term": raft.term}))
        if self.keeper.leading:
            for command in self.keeper.due(now):
                try:
                    raft.propose(command)
                except (NotLeader, ProposalDropped):
                    break
        if now >= self._next_autopilot:
            self._next_autopilot = now + self.settings.autopilot_interval
            self._autopilot(members)

    def _autopilot(self, members: Mapping[str, MemberView]) -> None:
        raft = self.raft
        assert raft is not None
        pending = raft.pending_conf_index > raft.committed
        last = raft.log.last_index() if hasattr(raft.log, "last_index") else raft.committed
        caught_up = {
            node for node, pr in raft.prs.items() if last - pr.match <= self.cfg.max_append_entries
        }
        change = next_change(raft.conf, members, pending, self.cfg, self.id, caught_up)
        if change is None:
            return
        try:
            raft.propose_conf_change(change)
        except (NotLeader, ProposalDropped) as exc:
            log.debug("event=conf_change_dropped change=%s why=%r", change, exc)
            return
        log.info("event=conf_change_proposed op=%s node=%s", change.op, change.node)

    def receive(self, now: float, sender: str | None, msg: Message) -> None:
        """A `raft.*` or `cons.*` message from node `sender` (its id, from the message)."""
        self._now = now
        t = msg.get("t")
        if t == ANNOUNCE:
            self._announced(msg)
            return
        if t == FORWARD:
            self._take_forward(msg)
            return
        if t == ACK:
            self._take_ack(msg)
            return
        if t == READ:
            self._take_read(msg)
            return
        if t == RESULT:
            self._take_result(msg)
            return
        try:
            decoded = raft_messages.decode(msg)
        except DecodeError:
            self.counters["dropped_malformed"] += 1
            return
        if decoded.to != self.id:
            return
        if self.raft is None:
            if not self._joinable(decoded):
                return
            self._start()
        assert self.raft is not None
        self.raft.step(decoded)
        self._stepped()

    def _joinable(self, msg: raft_messages.RaftMessage) -> bool:
        """A node with no group joins the one whose leader talks to it (it was added)."""
        return type(msg).__name__ in ("Append", "Heartbeat", "SnapshotChunk")

    def _announced(self, msg: Message) -> None:
        leader = msg.get("f")
        if not isinstance(leader, str):
            self.counters["dropped_malformed"] += 1
            return
        if self.raft is None:
            self._heard_leader = leader
        elif leader not in self.raft.conf.members() and self.raft.lead not in (None, leader):
            self.counters["foreign_leaders"] += 1
            log.warning(
                "event=consensus_foreign_group leader=%s ours=%s: two consensus groups formed "
                "apart (bootstrap_expect too small for a partitioned start); they do not merge",
                leader,
                self.raft.lead,
            )

    # --- clients ---------------------------------------------------------------------------

    def submit(self, now: float, token: Token, command: bytes) -> None:
        """Propose `command` for the state machine; its result comes as `(token, result)`."""
        self._now = now
        wait = _Waiting(now + self.settings.command_timeout)
        self._waiting[token] = wait
        raft = self.raft
        if raft is None:
            if self._heard_leader is None:
                self._fail(token, "no leader has announced itself to this node yet")
                return
            self.counters["forwarded"] += 1
            msg = {"t": FORWARD, "f": self.id, "id": token, "cmd": command, "r": True}
            self._outbox.append((self._heard_leader, msg))
            return
        if raft.role is Role.LEADER:
            try:
                index, term = raft.propose(command)
            except (NotLeader, ProposalDropped) as exc:
                self._fail(token, f"the leader cannot take it now ({exc})")
                return
            self.counters["proposed"] += 1
            self._track(token, index, term)
            self._stepped()
        elif raft.lead is not None:
            self.counters["forwarded"] += 1
            self._outbox.append(
                (raft.lead, {"t": FORWARD, "f": self.id, "id": token, "cmd": command})
            )
        else:
            self._fail(token, "no leader (no quorum, or an election is running)")

    def read(self, now: float, token: Token, ns: str, key: str) -> None:
        """A linearizable read of a register: ReadIndex, then the machine once it caught up."""
        self._now = now
        self._waiting[token] = _Waiting(now + self.settings.command_timeout, read=(ns, key))
        if self.raft is None:
            if self._heard_leader is None:
                self._fail(token, "no leader has announced itself to this node yet")
                return
            msg = {"t": READ, "f": self.id, "id": token, "ns": ns, "key": key}
            self._outbox.append((self._heard_leader, msg))
            return
        self._read_seq += 1
        context = self._read_seq.to_bytes(8, "big")
        try:
            self.raft.read_index(context)
        except (NotLeader, ProposalDropped) as exc:
            self._fail(token, f"no leader to confirm a read ({exc})")
            return
        self._reads[context] = token
        self._stepped()

    def _track(self, token: Token, index: int, term: int) -> None:
        wait = self._waiting.get(token)
        if wait is None:
            return
        wait.index, wait.term = index, term
        self._by_index.setdefault(index, []).append(token)

    def _take_forward(self, msg: Message) -> None:
        """A follower's client command. The network may deliver it twice (UDP duplicates):
        proposing it again would apply it twice and, when the acknowledgements cross, tell
        the client the second application's result (a cas that swapped reported as not
        swapped). So a command already proposed is acknowledged again with its entry. The
        key includes the command's digest: request ids restart when the follower does."""
        origin, ident, command = msg.get("f"), msg.get("id"), msg.get("cmd")
        remote = msg.get("r", False)
        if (
            not isinstance(origin, str)
            or type(ident) is not int
            or not isinstance(command, bytes)
            or type(remote) is not bool
        ):
            self.counters["dropped_malformed"] += 1
            return
        if self.raft is None or self.raft.role is not Role.LEADER:
            return  # the follower times out, as it does for a lost message
        seen = (origin, ident, hashlib.blake2b(command, digest_size=16).digest())
        entry = self._forwarded.get(seen)
        if entry is None:
            try:
                entry = self.raft.propose(command)
            except (NotLeader, ProposalDropped):
                return
            self.counters["proposed"] += 1
            self._forwarded[seen] = entry
            if len(self._forwarded) > MAX_FORWARDED:
                del self._forwarded[next(iter(self._forwarded))]
            if remote:
                self._remote.setdefault(entry[0], []).append((origin, ident, entry[1]))
            self._stepped()
        else:
            self.counters["duplicates"] += 1
        index, term = entry
        if not remote:
            self._outbox.append((origin, {"t": ACK, "id": ident, "index": index, "term": term}))

    def _take_read(self, msg: Message) -> None:
        """An outsider's linearizable read: ReadIndex here, the value sent back once applied."""
        origin, ident, ns, key = msg.get("f"), msg.get("id"), msg.get("ns"), msg.get("key")
        if not (
            isinstance(origin, str)
            and type(ident) is int
            and isinstance(ns, str)
            and isinstance(key, str)
        ):
            self.counters["dropped_malformed"] += 1
            return
        if self.raft is None or self.raft.role is not Role.LEADER:
            return
        if len(self._remote_reads) >= self.cfg.max_pending_reads:
            return  # the outsider times out
        self._read_seq += 1
        context = self._read_seq.to_bytes(8, "big")
        try:
            self.raft.read_index(context)
        except (NotLeader, ProposalDropped):
            return
        deadline = self._now + self.settings.command_timeout
        self._remote_reads[context] = _RemoteRead(origin, ident, ns, key, deadline)
        self._stepped()

    def _take_result(self, msg: Message) -> None:
        """The leader's answer to this outsider's command or read."""
        ident, result = msg.get("id"), msg.get("res")
        if type(ident) is not int or not isinstance(result, dict):
            self.counters["dropped_malformed"] += 1
            return
        wait = self._waiting.pop(ident, None)
        if wait is None:
            return
        if wait.read is None:
            self._results.append((ident, result))
        elif result.get("absent") is True:
            self._results.append((ident, ABSENT))
        else:
            self._results.append((ident, result.get("value")))

    def _take_ack(self, msg: Message) -> None:
        ident, index, term = msg.get("id"), msg.get("index"), msg.get("term")
        if type(ident) is not int or type(index) is not int or type(term) is not int:
            self.counters["dropped_malformed"] += 1
            return
        wait = self._waiting.get(ident)
        if wait is None or wait.index:
            return
        if self.raft is not None and index <= self.raft.applied:
            # Applied before the ack arrived: the outcome is no longer known here.
            self._fail(ident, "the command's outcome is unknown (applied before its ack)")
            return
        self._track(ident, index, term)

    def _fail(self, token: Token, why: str) -> None:
        wait = self._waiting.pop(token, None)
        if wait is None:
            return
        if wait.index:
            tokens = self._by_index.get(wait.index, [])
            if token in tokens:
                tokens.remove(token)
        self._results.append((token, Unavailable(f"consensus: {why}")))

    def _expire(self, now: float) -> None:
        late = [t for t, w in self._waiting.items() if now >= w.deadline]
        for token in late:
            self.counters["timeouts"] += 1
            self._fail(
                token,
                f"not settled within {self.settings.command_timeout:g}s (no quorum?); "
                "a command may still take effect",
            )
        if late:
            self._reads = {c: t for c, t in self._reads.items() if t in self._waiting}
        for context in [c for c, r in self._remote_reads.items() if now >= r.deadline]:
            del self._remote_reads[context]

    # --- the Ready contract -------------------------------------------------------------------

    def has_ready(self) -> bool:
        raft_ready = self.raft is not None and self._inflight is None and self.raft.has_ready()
        return bool(raft_ready or self._outbox or self._results or self._decided)

    def ready(self) -> GroupReady:
        rd = GroupReady(messages=self._outbox, results=self._results, decided=self._decided)
        self._outbox, self._results, self._decided = [], [], []
        if self.raft is not None and self._inflight is None and self.raft.has_ready():
            self._inflight = rd.persist = self.raft.ready()
            if self._observer is not None:
                self._observer.ready(self.raft, rd.persist)
        return rd

    def persisted(self, rd: RaftReady) -> None:
        """`rd` is durable: send its messages, apply what it committed, advance Raft."""
        raft = self.raft
        assert raft is not None and rd is self._inflight
        self._inflight = None
        observer = self._observer
        if observer is not None:
            observer.persisted(rd)
        for msg in rd.messages:
            if observer is not None:
                observer.sent(msg)
            self._outbox.append((msg.to, raft_messages.encode(msg)))
        now = self._now
        if rd.soft_state is not None:
            if rd.soft_state.role is Role.LEADER:
                self.keeper.become_leader(now, self.machine.leases())
                log.info("event=consensus_leader node_id=%s term=%d", self.id, raft.term)
            else:
                self.keeper.become_follower()
        if rd.snapshot is not None:
            self.machine = StateMachine.restore(rd.snapshot.data)
            for index in [i for i in self._by_index if i <= rd.snapshot.meta.index]:
                for token in self._by_index.pop(index):
                    self._fail(token, "the command's outcome is unknown (a snapshot covered it)")
            for index in [i for i in self._remote if i <= rd.snapshot.meta.index]:
                del self._remote[index]  # the outsiders time out: outcome unknown
        for entry in rd.committed_entries:
            if observer is not None:
                observer.applying(raft, entry)
            result: Any = None
            if entry.kind is EntryKind.NORMAL:
                applied = self.machine.apply(entry.index, entry.data)
                self.counters["applied"] += 1
                result = applied.result
                if applied.lease is not None:
                    self.keeper.observe(now, applied.lease)
                if entry.data and _is_decision(entry.data) and result.get("ok"):
                    self._decided.append(Decided(entry.index, entry.term, result["winner"]))
            for token in self._by_index.pop(entry.index, []):
                wait = self._waiting.pop(token, None)
                if wait is None:
                    continue
                if wait.term != entry.term or result is None:
                    self._waiting[token] = wait
                    self._fail(token, "the command was replaced by another leader's entry")
                else:
                    self._results.append((token, result))
            for origin, ident, term in self._remote.pop(entry.index, []):
                if term == entry.term and result is not None:
                    self._outbox.append((origin, {"t": RESULT, "id": ident, "res": result}))
        raft.advance(rd)
        for read in rd.read_states:
            self._serve_read(read.context, read.index)
        self._serve_reads_applied()
        if raft.snapshot_due():
            raft.compact(raft.applied, self.machine.snapshot())
        self._stepped()

    def _serve_read(self, context: bytes, index: int) -> None:
        remote = self._remote_reads.get(context)
        if remote is not None:
            remote.index = index
            return
        token = self._reads.pop(context, None)
        wait = self._waiting.get(token) if token is not None else None
        if wait is not None:
            wait.read_index = index

    def _serve_reads_applied(self) -> None:
        assert self.raft is not None
        applied = self.raft.applied
        for token, wait in list(self._waiting.items()):
            if wait.read is not None and wait.read_index is not None and wait.read_index <= applied:
                del self._waiting[token]
                ns, key = wait.read
                self._results.append((token, self.machine.read(ns, key)))
        for context, r in list(self._remote_reads.items()):
            if r.index is not None and r.index <= applied:
                del self._remote_reads[context]
                value = self.machine.read(r.ns, r.key)
                res = {"absent": True} if value is ABSENT else {"value": value}
                self._outbox.append((r.origin, {"t": RESULT, "id": r.ident, "res": res}))

    def next_deadline(self) -> float | None:
        due = [w.deadline for w in self._waiting.values()]
        if self.raft is not None:
            if self._alone():
                due.append(self._lead_due())
            elif self._raft_paused:
                due.append(self._now)
            else:
                due.append(self._next_tick)
            keeper = self.keeper.next_deadline()
            if keeper is not None:
                due.append(keeper)
        elif self._heard_leader is None:
            due.append(self._stable_since + self.settings.bootstrap_wait)
        return min(due) if due else None

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"joined": self.joined, "group": dict(self.counters)}
        if self.raft is None:
            out["leader"] = self._heard_leader
            return out
        raft = self.raft
        out.update(raft.status())
        out["voters"] = sorted(raft.conf.voters)
        out["learners"] = sorted(raft.conf.learners)
        out["waiting"] = len(self._waiting)
        if raft.role is Role.LEADER:
            out["lag"] = {node: raft.committed - pr.match for node, pr in sorted(raft.prs.items())}
        return out


def _is_decision(data: bytes) -> bool:
    try:
        command = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return False
    return isinstance(command, dict) and command.get("op") == "decide"


def open_group(
    node_id: str,
    config: Any,
    directory: Path,
    rng: random.Random,
    now: float,
    *,
    sync: bool = True,
    map_size: int = 1 << 30,
) -> tuple[ConsensusGroup, LmdbStorage] | None:
    """A node's consensus group on its Raft storage under `directory` (None when turned
    off in `config.consensus`). The caller closes the storage after the node stops."""
    cc = config.consensus
    if not cc.enabled:
        return None
    local = config.profile == "local"
    settings = GroupSettings(
        bootstrap_expect=cc.bootstrap_expect,
        bootstrap_wait=cc.bootstrap_wait,
        announce_interval=0.2 if local else 1.0,
        autopilot_interval=0.2 if local else 1.0,
        command_timeout=cc.command_timeout,
    )
    storage = LmdbStorage(directory, map_size=map_size, sync=sync)
    return ConsensusGroup(node_id, cc.raft(config.profile), settings, storage, rng, now), storage
