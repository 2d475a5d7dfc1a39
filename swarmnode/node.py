"""A node as a Step/Ready machine: the protocol cores composed around the store.

In the shape of etcd-io/raft's `RawNode`. Inputs are steps: `tick(now)`,
`receive(now, sender, message)`, `propose(op, token)` (a client's write),
`sync(now, token, peer)`, and `persisted(batch, results)`, the runtime's word
that a batch of writes is durable. Outputs come out of `ready()` as one
`Ready`: the writes to persist as one batch, the messages that may be sent
now, the replies to clients whose commands are settled, and the changes the
store committed (for watchers, the vector index, analytics). The runtime
carries a Ready out and calls `advance(ready)`.

The order is the one etcd-raft requires: persist, then send what depends on
it, then apply. A write's delta is queued for gossip, its Merkle leaf updated
and its client answered only when `persisted` reports its batch durable, and
that always arrives as a later step, never inside `ready()` or a write: the
node never calls back into itself, whatever the runtime (a writer thread for
real, a virtual-time committer in the simulator).

The node owns no socket, thread, clock or timer; `now` is the runtime's
monotonic time and randomness comes from the `random.Random` it is given.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmnode.commands.consensus import conflict_id, conflict_of
from swarmnode.config import Config
from swarmnode.consensus.group import ConsensusGroup
from swarmnode.consensus.machine import decide
from swarmnode.consensus.ready import RaftReady
from swarmnode.consensus.voters import MemberView
from swarmnode.crdt.codec import decode_entry, encode_entry
from swarmnode.crdt.hlc import wall_ms
from swarmnode.errors import DecodeError, Unavailable
from swarmnode.membership import events as mev
from swarmnode.membership.swim import Membership
from swarmnode.metrics import Registry, merge_tree
from swarmnode.placement.keeper import PlacementKeeper
from swarmnode.replication.antientropy import AntiEntropy, ApplyStates, RoundFinished
from swarmnode.replication.dissemination import MSG_DELTAS, Dissemination
from swarmnode.replication.merkle import MerkleTree, leaf_bits
from swarmnode.replication.owners import MSG_ACK, acknowledgement
from swarmnode.replication.recent import RecentDeltas
from swarmnode.routing.rpc import CallAnswered, Calls, IncomingCall
from swarmnode.sansio import Address, Message, Output
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.namespaces import SYSTEM_NS
from swarmnode.storage.ops import Change, Decided, Merge, Op, OpResult, Purge, Sweep

log = logging.getLogger("swarmnode.node")

Token = int
"""Names a client's command; the reply carries it back."""

Continuation = Callable[[OpResult], None]

RECENT_FAILURES = 16
"""Failed anti-entropy rounds whose reasons `stats` lists (the latest ones)."""


@dataclass
class SyncReport:
    """What one `sync` did, summed over its rounds."""

    peers: int = 0
    rounds_ok: int = 0
    rounds_failed: int = 0
    keys_sent: int = 0
    keys_received: int = 0
    digest_bytes: int = 0
    state_bytes: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, ev: RoundFinished) -> None:
        if ev.ok:
            self.rounds_ok += 1
        else:
            self.rounds_failed += 1
            self.failures.append(f"{ev.peer[0]}:{ev.peer[1]}: {ev.reason or 'failed'}")
        self.keys_sent += ev.keys_sent
        self.keys_received += ev.keys_received
        self.digest_bytes += ev.digest_bytes
        self.state_bytes += ev.state_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "peers": self.peers,
            "rounds_ok": self.rounds_ok,
            "rounds_failed": self.rounds_failed,
            "keys_repaired": self.keys_sent + self.keys_received,
            "keys_sent": self.keys_sent,
            "keys_received": self.keys_received,
            "bytes_exchanged": self.digest_bytes + self.state_bytes,
            "digest_bytes": self.digest_bytes,
            "state_bytes": self.state_bytes,
            "failures": self.failures,
        }


@dataclass
class Ready:
    """What the runtime must do now, in this order: persist, send, reply, announce."""

    batch: int = 0
    """Id of the batch in `writes` (0: none); `persisted(batch, results)` acknowledges it."""
    writes: list[Op] = field(default_factory=list)
    messages: list[tuple[Address, Message]] = field(default_factory=list)
    """Messages that depend on nothing unpersisted: send them now."""
    replies: list[tuple[Token, Any]] = field(default_factory=list)
    """(token, OpResult) for settled writes, (token, SyncReport) for settled syncs."""
    changes: list[Change] = field(default_factory=list)
    """Changes the store committed, in commit order."""
    raft: RaftReady | None = None
    """The consensus group's state to make durable with the batch (before its writes); the
    messages that depend on it are released by `persisted`."""
    calls: list[IncomingCall] = field(default_factory=list)
    """Requests peers forwarded here (sharded namespaces); the runtime answers each with
    `answer`."""

    def __bool__(self) -> bool:
        return bool(
            self.writes or self.messages or self.replies or self.changes or self.raft or self.calls
        )


@dataclass
class _Conflict:
    """A conflict of a consensus namespace this node proposed a decision for."""

    proposal: dict[str, Any]
    since: float
    retry_at: float = 0.0


class _PendingSync:
    def __init__(self, token: Token, rounds: set[int], deadline: float, peers: int):
        self.token = token
        self.rounds = rounds
        self.deadline = deadline
        self.report = SyncReport(peers=peers)
        # Repair writes submitted up to the end of the last round: the sync
        # answers only once they are committed, so a read after it sees them.
        self.barrier = 0


class Node:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        address: Address,
        rng: random.Random,
        now: float,
        consensus: ConsensusGroup | None = None,
        metrics: Registry | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.node_id = store.node_id
        self.address = address
        self.rng = rng
        self.started_at = now
        self.metrics = metrics if metrics is not None else Registry()
        """The node's metrics: every core and front end of this node counts here."""
        self.membership = Membership(
            self.node_id, address, config.membership, rng, metrics=self.metrics
        )
        self.dissemination = Dissemination(config.dissemination, rng, self.metrics)
        self._recent = RecentDeltas(
            config.dissemination.dedup_window, config.dissemination.max_queue
        )
        self.trees: dict[str, MerkleTree] = {}
        self._build_trees()
        ae = config.antientropy
        self._same_leaves = store.leaf_bits == leaf_bits(ae.tree_fanout, ae.tree_depth)
        """Whether the store's Merkle index and the trees split keys into the same leaves:
        then a change's leaf, hashed by the engine, is the tree's too."""
        self.placement = PlacementKeeper(self, now)
        """Sharded namespaces: the settled view, owners, partitions handed over."""
        self.antientropy = AntiEntropy(
            self.node_id, self, config.antientropy, rng, partitions=self.placement
        )
        self.calls = Calls(rng)
        """Requests forwarded to peers and their answers (sharded namespaces)."""
        self._incoming: list[IncomingCall] = []
        self._outbox: list[tuple[Address, Message]] = []
        self._pending: list[tuple[Op, Continuation]] = []
        self._inflight: dict[int, tuple[list[Continuation], RaftReady | None]] = {}
        self.consensus = consensus
        self._internal = itertools.count(-1, -1)
        """Tokens of the node's own consensus commands (decisions): negative, never a client's."""
        self._mine: dict[Token, Callable[[Any], None]] = {}
        self._conflicts: dict[str, _Conflict] = {}
        self._next_batch = 1
        self._replies: list[tuple[Token, Any]] = []
        self._changes: list[Change] = []
        self._next_ae = now + config.antientropy.interval * rng.random()
        self._next_sweep = now
        self._sweeping = False
        self._purging: set[str] = set()
        self._syncs: list[_PendingSync] = []
        self._now = now
        self._ae_failures: deque[str] = deque(maxlen=RECENT_FAILURES)
        self._declare_metrics(self.metrics)
        # Anti-entropy writes submitted and committed, in submission order (batches
        # are acknowledged in order), so "committed >= n" means the first n are durable.
        self._ae_submitted = 0
        self._ae_committed = 0

    # --- start-up -----------------------------------------------------------

    def _build_trees(self) -> None:
        ae = self.config.antientropy
        for ns in self.store.data_namespaces():
            self.trees[ns] = MerkleTree.build(
                self.store.digests(ns), fanout=ae.tree_fanout, depth=ae.tree_depth
            )
            log.info("event=merkle_built ns=%s keys=%d", ns, self.trees[ns].count())

    def start(self, now: float, seeds: list[Address]) -> None:
        self._now = now
        seeds = [s for s in seeds if s != self.address]
        self._emit(self.membership.join(now, seeds))

    def leave(self, now: float) -> None:
        self._emit(self.membership.leave(now))

    # --- outputs -------------------------------------------------------------

    @property
    def now(self) -> float:
        """The runtime time of the node's latest step."""
        return self._now

    def has_ready(self) -> bool:
        group = self.consensus is not None and self.consensus.has_ready()
        return bool(
            group
            or self._pending
            or self._outbox
            or self._replies
            or self._changes
            or self._incoming
        )

    def ready(self) -> Ready:
        """Everything the runtime must carry out now; taken from the node, so call it once."""
        raft = self._take_group() if self.consensus is not None else None
        rd = Ready(
            messages=self._outbox,
            replies=self._replies,
            changes=self._changes,
            raft=raft,
            calls=self._incoming,
        )
        self._outbox, self._replies, self._changes, self._incoming = [], [], [], []
        if self._pending or raft is not None:
            rd.batch = self._next_batch
            self._next_batch += 1
            rd.writes = [op for op, _ in self._pending]
            self._inflight[rd.batch] = ([cont for _, cont in self._pending], raft)
            self._pending = []
        return rd

    def _take_group(self) -> RaftReady | None:
        """What the consensus group has: its messages, settled commands, decisions."""
        group = self.consensus
        assert group is not None
        if not group.has_ready():
            return None
        g = group.ready()
        for node_id, msg in g.messages:
            member = self.membership.member(node_id)
            if member is None:
                self._consensus_events.labels("unroutable").inc()
                continue
            self._outbox.append((member.addr, msg))
        for token, result in g.results:
            handler = self._mine.pop(token, None)
            if handler is not None:
                handler(result)
            elif token > 0:
                self._replies.append((token, result))
        for d in g.decided:
            p = d.payload
            if (
                isinstance(p, dict)
                and isinstance(p.get("ns"), str)
                and isinstance(p.get("key"), str)
            ):
                self._write(
                    Decided(p["ns"], p["key"], p, d.index, p.get("agent")), self._decision_written
                )
        return g.persist

    def advance(self, rd: Ready) -> None:
        """The runtime carried out `rd`: its messages are sent, its batch is with the committer."""
        if rd.batch and rd.batch not in self._inflight:
            raise RuntimeError(f"batch {rd.batch} was acknowledged before it was advanced")

    def next_deadline(self) -> float:
        """The earliest time at which `tick` has work (a runtime may sleep until then)."""
        due = [self._next_ae]
        if not self._sweeping:
            due.append(self._next_sweep)
        for d in (
            self.membership.next_deadline(),
            self.dissemination.next_deadline(),
            self.antientropy.next_deadline(),
            self.placement.next_deadline(),
            self.calls.next_deadline(),
        ):
            if d is not None:
                due.append(d)
        due.extend(s.deadline for s in self._syncs if s.rounds)
        if self.consensus is not None:
            group = self.consensus.next_deadline()
            if group is not None:
                due.append(group)
        return min(due)

    # --- inputs ----------------------------------------------------------------

    def tick(self, now: float) -> None:
        self._now = now
        self._emit(self.membership.tick(now))
        if self.dissemination.pending():
            # Listing peers is O(members): only when there is something to send.
            self._emit(self.dissemination.tick(now, self.peer_addresses()))
        self._emit(self.antientropy.tick(now))
        if now >= self._next_ae:
            self._next_ae = now + self.config.antientropy.interval
            peers = self.peer_addresses()
            if peers and self.antientropy.active_rounds == 0:
                self._start_round(now, self.rng.choice(peers))
        if now >= self._next_sweep and not self._sweeping:
            self._next_sweep = now + self.config.node.sweep_interval
            self._sweep()
        self._expire_syncs(now)
        self.placement.tick(now)
        if self.calls.in_flight:
            self._emit(self.calls.tick(now))
        if self.consensus is not None:
            self.consensus.tick(now, self._member_views(now))
            self._retry_conflicts(now)

    def receive(self, now: float, sender: Address, msg: Message) -> None:
        """One gossip message from `sender`; malformed ones are counted and dropped."""
        self._now = now
        t = msg.get("t")
        try:
            if not isinstance(t, str):
                raise DecodeError("message without a type")
            if t.startswith("swim."):
                self._emit(self.membership.receive(now, sender, msg))
            elif t in (MSG_DELTAS, MSG_ACK) or t.startswith(("ae.", "raft.", "cons.", "h.", "rq.")):
                if self.membership.refuses(sender):
                    # A peer whose cluster settings differ: its states would diverge here.
                    self._dropped_refused.inc()
                elif t == MSG_DELTAS:
                    deltas = self.dissemination.receive(msg)
                    ack = acknowledgement(sender, msg)
                    # Copies of deltas written or merged here moments ago change nothing;
                    # they tell that the sender holds them, so they are not sent to it.
                    fresh, copies = self._recent.split(now, deltas)
                    if copies:
                        self._deltas_duplicate.inc(len(copies))
                        self.dissemination.heard(sender, copies)
                    # An acknowledged message came from an owner that sends to every owner
                    # itself: its deltas are not forwarded.
                    for ns, key, payload in fresh:
                        self._merge_delta(ns, key, payload, sender, forward=not ack.send)
                    self._emit(ack)
                elif t == MSG_ACK:
                    self.dissemination.acked(sender, msg)
                elif t.startswith("ae."):
                    self._emit(self.antientropy.receive(now, sender, msg))
                elif t.startswith("h."):
                    self.placement.receive(now, sender, msg)
                elif t.startswith("rq."):
                    self._emit(self.calls.receive(now, sender, msg))
                elif self.consensus is None:
                    raise DecodeError("consensus is turned off on this node")
                else:
                    self.consensus.receive(now, msg.get("f"), msg)
            else:
                raise DecodeError(f"unknown message type {t!r}")
        except DecodeError as exc:
            self._dropped_malformed.inc()
            log.debug("event=message_dropped from=%s:%s why=%s", *sender, exc)

    def propose(self, op: Op, token: Token) -> None:
        """A client's write; its OpResult comes back in a later Ready's replies."""
        self._write(op, lambda result: self._replies.append((token, result)))

    def propose_command(self, token: Token, command: bytes) -> None:
        """A command for the consensus group's state machine (cas, claim, ...); its result
        map (or `Unavailable`) comes back in a later Ready's replies."""
        if self.consensus is None:
            self._replies.append((token, Unavailable("consensus is turned off on this node")))
            return
        self.consensus.submit(self._now, token, command)

    def call_peer(self, token: Token, peer: Address, body: Any, timeout: float) -> None:
        """Forward a request to a peer; its `CallAnswered` (answer or timeout) comes back in a
        later Ready's replies."""
        self._emit(self.calls.call(self._now, token, peer, body, timeout))

    def answer(self, call: IncomingCall, body: Any) -> None:
        """The answer to a request a peer forwarded here."""
        self._emit(self.calls.reply(call.peer, call.call_id, body))

    def read_linearizable(self, token: Token, ns: str, key: str) -> None:
        """The consensus group's register (ns, key), read through the leader (ReadIndex)."""
        if self.consensus is None:
            self._replies.append((token, Unavailable("consensus is turned off on this node")))
            return
        self.consensus.read(self._now, token, ns, key)

    def persisted(self, batch: int, results: list[OpResult]) -> None:
        """The runtime committed `batch` (in order): take note, then settle its continuations."""
        inflight = self._inflight.pop(batch, None)
        if inflight is None or len(inflight[0]) != len(results):
            raise RuntimeError(f"persisted: batch {batch} is not the one in flight")
        continuations, raft = inflight
        if raft is not None:
            assert self.consensus is not None
            self.consensus.persisted(raft)
        for continuation, result in zip(continuations, results, strict=True):
            for change in result.changes:
                self._apply_change(change)
            continuation(result)
        if self._syncs:
            self._settle_syncs()

    # --- writes ------------------------------------------------------------------

    def _write(self, op: Op, continuation: Continuation) -> None:
        self._pending.append((op, continuation))

    def write(self, op: Op, continuation: Continuation) -> None:
        """Queue a write of the node's own (placement's handoffs); `continuation` gets its
        result once it is durable."""
        self._write(op, continuation)

    def emit(self, out: Output) -> None:
        """Carry out what a core asked (messages to send, events to act on)."""
        self._emit(out)

    def _apply_change(self, ch: Change) -> None:
        if ch.old_digest != ch.new_digest:
            tree = self.trees.get(ch.ns)
            if tree is None:
                ae = self.config.antientropy
                tree = self.trees[ch.ns] = MerkleTree(ae.tree_fanout, ae.tree_depth)
            leaf = ch.leaf if self._same_leaves else None
            tree.update(ch.key, ch.old_digest, ch.new_digest, leaf)
        if ch.delta is not None:
            group = None
            if self.placement.sharding(ch.ns) is not None:
                group = self.placement.group(ch.ns, ch.key)
            payload = ch.payload if ch.payload is not None else encode_entry(ch.delta)
            self._recent.remember(self._now, (ch.ns, ch.key, payload))
            self.dissemination.enqueue(ch.ns, ch.key, payload, group)
        if ch.ns == SYSTEM_NS:
            self.placement.definitions_changed(self._now)
        if ch.ns == SYSTEM_NS and ch.kind in ("ns", "merge"):
            self._maybe_purge(ch.key)
        if self.consensus is not None and ch.entry is not None and ch.entry.mv is not None:
            self._maybe_escalate(ch.ns, ch.key, ch.entry)
        self._changes.append(ch)

    def _merge_delta(
        self, ns: str, key: str, payload: bytes, sender: Address, forward: bool = True
    ) -> None:
        try:
            state = decode_entry(payload)
        except DecodeError:
            self._dropped.labels("bad_delta").inc()
            return

        def merged(result: OpResult) -> None:
            if result.error is not None:
                self._recent.forget((ns, key, payload))
                self._count_merge_error(result)
            elif result.value and result.value.get("applied"):
                # New to us: pass the same delta on; a duplicate stops here. In a sharded
                # namespace, to the partition's other owners (the sender has it).
                if forward:
                    group = None
                    if self.placement.sharding(ns) is not None:
                        group = self.placement.group(ns, key, exclude=sender)
                    self.dissemination.enqueue(ns, key, payload, group, source=sender)
                self._deltas_applied.inc()
            elif result.note is not None:
                self._deltas.labels(result.note).inc()
            else:
                self._deltas_duplicate.inc()

        self._write(Merge(ns, key, state, full=False), merged)

    def _count_merge_error(self, result: OpResult) -> None:
        code = result.error.code if result.error else "internal"
        self._merges_rejected.labels(code).inc()

    count_merge_error = _count_merge_error

    def count_drop(self, reason: str) -> None:
        """A replicated item that could not be decoded, dropped."""
        self._dropped.labels(reason).inc()

    def _apply_states(self, ev: ApplyStates) -> None:
        for key, raw in ev.states:
            try:
                state = decode_entry(raw)
            except DecodeError:
                self._dropped.labels("bad_state").inc()
                continue
            self._ae_submitted += 1
            self._write(Merge(ev.ns, key, state, full=True), self._state_applied)

    def _state_applied(self, result: OpResult) -> None:
        self._ae_committed += 1
        if result.error is not None:
            self._count_merge_error(result)
        elif result.value and result.value.get("applied"):
            self._ae_keys_applied.inc()

    # --- consensus: conflicts escalated to the group ---------------------------------

    def _maybe_escalate(self, ns: str, key: str, entry: Any) -> None:
        if self.store.namespace(ns).policy != "consensus":
            return
        proposal = conflict_of(ns, key, entry, None)
        if proposal is None:
            return
        cid = conflict_id(proposal)
        if cid not in self._conflicts:
            # Proposed a little later: gossip may still bring siblings, and a proposal
            # that covers them all saves a round of decisions.
            settle = 3 * self.config.dissemination.interval
            self._conflicts[cid] = _Conflict(proposal, self._now, self._now + settle)

    def _propose_decision(self, cid: str) -> None:
        assert self.consensus is not None
        conflict = self._conflicts[cid]
        token = next(self._internal)
        self._mine[token] = lambda result: self._decision_answered(cid, result)
        at_ms = wall_ms(conflict.proposal["ts"])
        self._consensus_events.labels("conflict_proposed").inc()
        self.consensus.submit(self._now, token, decide(cid, conflict.proposal, at_ms))

    def _decision_answered(self, cid: str, result: Any) -> None:
        conflict = self._conflicts.get(cid)
        if conflict is None:
            return
        if isinstance(result, dict) and "winner" in result:
            del self._conflicts[cid]  # decided (by us or first by another replica)
        else:
            conflict.retry_at = self._now + self.config.consensus.command_timeout

    def _retry_conflicts(self, now: float) -> None:
        for cid, conflict in list(self._conflicts.items()):
            if conflict.retry_at and now >= conflict.retry_at:
                conflict.retry_at = 0.0
                if self._still_in_conflict(conflict.proposal):
                    self._propose_decision(cid)
                else:
                    del self._conflicts[cid]  # another decision already covered it

    def _still_in_conflict(self, proposal: dict[str, Any]) -> bool:
        entry = self.store.get(proposal["ns"], proposal["key"])
        if entry is None or entry.mv is None:
            return False
        now = conflict_of(proposal["ns"], proposal["key"], entry, None)
        return now is not None and conflict_id(now) == conflict_id(proposal)

    def _decision_written(self, result: OpResult) -> None:
        if result.error is not None:
            log.error("event=decision_write_failed error=%s", result.error.message)
        else:
            self._consensus_events.labels("decision_written").inc()

    def _member_views(self, now: float) -> dict[str, MemberView]:
        views = {}
        for m in self.membership.members():
            alive = m.state.live
            views[m.node_id] = MemberView(alive, 0.0 if alive else max(0.0, now - m.since))
        return views

    # --- housekeeping ------------------------------------------------------

    def _sweep(self) -> None:
        self._sweeping = True
        self._write(Sweep(self.config.node.sweep_batch), self._swept)

    def _swept(self, result: OpResult) -> None:
        self._sweeping = False
        if result.error is not None:
            log.error("event=sweep_failed error=%s", result.error.message)
            return
        if result.changes:
            self._swept_entries.inc(len(result.changes))
        if result.more:
            self._sweep()

    def _maybe_purge(self, ns: str) -> None:
        definition = self.store.namespace(ns)
        if definition.cleared_at and ns not in self._purging and ns in self.trees:
            self._purging.add(ns)
            self._write(Purge(ns, self.config.node.sweep_batch), lambda r: self._purged(ns, r))

    def _purged(self, ns: str, result: OpResult) -> None:
        if result.more:
            self._write(Purge(ns, self.config.node.sweep_batch), lambda r: self._purged(ns, r))
        else:
            self._purging.discard(ns)
            log.info("event=namespace_purged ns=%s", ns)

    # --- anti-entropy --------------------------------------------------------

    def _start_round(self, now: float, peer: Address) -> int:
        round_id, out = self.antientropy.start_round(now, peer)
        self._emit(out)
        return round_id

    def sync(self, now: float, token: Token, peer: Address | None = None) -> None:
        """Run anti-entropy now with every live peer (or one); the report comes as a reply."""
        self._now = now
        peers = [peer] if peer is not None else self.peer_addresses()
        rounds: set[int] = set()
        finished: list[RoundFinished] = []
        for p in peers:
            round_id, out = self.antientropy.start_round(now, p)
            for ev in out.events:
                if isinstance(ev, RoundFinished):
                    finished.append(ev)
            out.events = [ev for ev in out.events if not isinstance(ev, RoundFinished)]
            self._emit(out)
            rounds.add(round_id)
        pending = _PendingSync(token, rounds, now + self.config.node.sync_timeout, len(peers))
        self._syncs.append(pending)
        for ev in finished:
            self._round_finished(ev)
        self._settle_syncs()

    def _round_finished(self, ev: RoundFinished) -> None:
        self._count_round(ev)
        for s in self._syncs:
            if ev.round_id in s.rounds:
                s.rounds.discard(ev.round_id)
                s.report.add(ev)
                s.barrier = self._ae_submitted
        if not ev.ok:
            log.info("event=ae_round_failed peer=%s:%s reason=%s", *ev.peer, ev.reason)
        elif ev.keys_sent or ev.keys_received:
            log.info(
                "event=ae_round peer=%s:%s sent=%d received=%d bytes=%d",
                *ev.peer,
                ev.keys_sent,
                ev.keys_received,
                ev.digest_bytes + ev.state_bytes,
            )

    def _settle_syncs(self) -> None:
        still = []
        for s in self._syncs:
            if s.rounds or self._ae_committed < s.barrier:
                still.append(s)
            else:
                self._replies.append((s.token, s.report))
        self._syncs = still

    def _expire_syncs(self, now: float) -> None:
        for s in self._syncs:
            if now >= s.deadline and (s.rounds or self._ae_committed < s.barrier):
                if s.rounds:
                    s.report.rounds_failed += len(s.rounds)
                    s.report.failures.append(f"{len(s.rounds)} round(s) still running at timeout")
                    s.rounds.clear()
                else:
                    s.report.failures.append("repairs still being written at timeout")
                s.barrier = 0
        self._settle_syncs()

    # --- anti-entropy's view of the store (EntrySource) ---------------------

    def namespaces(self) -> list[str]:
        """Namespaces compared root to root: those every node holds whole (sharded ones are
        compared partition by partition, see `PlacementKeeper.partition_items`)."""
        return [
            ns
            for ns, tree in self.trees.items()
            if tree.count() and self.placement.sharding(ns) is None
        ]

    def tree(self, ns: str) -> MerkleTree | None:
        return self.trees.get(ns)

    def entries_in_leaves(
        self, ns: str, first_leaf: int, last_leaf: int
    ) -> list[tuple[str, bytes]]:
        return self.store.leaf_entries(ns, first_leaf, last_leaf)

    def states(self, ns: str, keys: list[str]) -> list[tuple[str, bytes]]:
        return self.store.states(ns, keys)

    # --- membership ----------------------------------------------------------

    def peer_addresses(self) -> list[Address]:
        return [addr for _, addr in self.membership.live_peers()]

    def _emit(self, out: Output) -> None:
        self._outbox.extend(out.send)
        for ev in out.events:
            if isinstance(ev, ApplyStates):
                self._apply_states(ev)
            elif isinstance(ev, RoundFinished):
                self._round_finished(ev)
            elif isinstance(ev, mev.MemberEvent):
                self._member_event(ev)
            elif isinstance(ev, IncomingCall):
                self._incoming.append(ev)
            elif isinstance(ev, CallAnswered):
                self._replies.append((ev.token, ev))
        if self._syncs:
            self._settle_syncs()

    def _member_event(self, ev: mev.MemberEvent) -> None:
        self.placement.observe(self._now)
        if self.consensus is not None:
            self.consensus.view_changed(self._now)
        log.info(
            "event=member_%s node_id=%s addr=%s:%s incarnation=%d",
            type(ev).__name__.removeprefix("Member").lower(),
            ev.node_id,
            *ev.addr,
            ev.incarnation,
        )
        if isinstance(ev, mev.MemberJoined | mev.MemberAlive) and (
            self.antientropy.active_rounds < self.config.antientropy.max_concurrent_rounds
        ):
            # A member that (re)appears may hold what we missed, or miss what we
            # hold: repair now rather than at the next random round.
            self._start_round(self._now, ev.addr)

    # --- stats ---------------------------------------------------------------

    def _declare_metrics(self, m: Registry) -> None:
        """The node's own metrics; `stats` renders them at the paths given here."""
        self._dropped = m.counter(
            "swarmnode_gossip_messages_dropped_total",
            "Gossip messages or items dropped by the node: malformed, undecodable delta or "
            "state, or replication traffic from a peer refused for its cluster settings.",
            labels=("reason",),
            stats=("counters", "dropped_{reason}"),
        )
        self._dropped_malformed = self._dropped.labels("malformed")
        self._dropped_refused = self._dropped.labels("refused_peer")
        self._deltas = m.counter(
            "swarmnode_gossip_deltas_merged_total",
            "Gossiped deltas committed here, by outcome: applied (new, forwarded), "
            "duplicate (changed nothing), or the reason the store set it aside.",
            labels=("outcome",),
            stats=("counters", "deltas_{outcome}"),
        )
        self._deltas_applied = self._deltas.labels("applied")
        self._deltas_duplicate = self._deltas.labels("duplicate")
        self._merges_rejected = m.counter(
            "swarmnode_merges_rejected_total",
            "Replicated states (deltas or repairs) the store refused, by error code.",
            labels=("code",),
            stats=("counters", "merge_rejected_{code}"),
        )
        self._ae_keys_applied = m.counter(
            "swarmnode_repair_keys_applied_total",
            "Entries anti-entropy changed here (states received that were new).",
            stats=("counters", "ae_keys_applied"),
        )
        self._consensus_events = m.counter(
            "swarmnode_consensus_events_total",
            "The node's part in consensus: conflicts it proposed for a decision, decisions it "
            "wrote into its store, group messages for a member it could not address.",
            labels=("event",),
            stats=("counters", "consensus_{event}"),
        )
        self._swept_entries = m.counter(
            "swarmnode_entries_swept_total",
            "Entries the sweeper found expired or collectable.",
            stats=("counters", "swept"),
        )
        rounds = m.counter(
            "swarmnode_repair_rounds_total",
            "Anti-entropy rounds finished (periodic, at join, and those `sync` started).",
            labels=("result",),
            stats=("antientropy", "rounds_{result}"),
        )
        self._rounds = {True: rounds.labels("ok"), False: rounds.labels("failed")}
        keys = m.counter(
            "swarmnode_repair_keys_total",
            "Entry states anti-entropy rounds sent to or received from peers.",
            labels=("direction",),
            stats=("antientropy", "keys_{direction}"),
        )
        self._keys_sent, self._keys_received = keys.labels("sent"), keys.labels("received")
        repair_bytes = m.counter(
            "swarmnode_repair_bytes_total",
            "Bytes anti-entropy rounds exchanged: Merkle digests, or entry states.",
            labels=("kind",),
            stats=("antientropy", "{kind}_bytes"),
        )
        self._digest_bytes = repair_bytes.labels("digest")
        self._state_bytes = repair_bytes.labels("state")
        m.gauge(
            "swarmnode_repair_rounds_active",
            "Anti-entropy rounds running now.",
            fn=lambda: self.antientropy.active_rounds,
            stats=("antientropy", "active"),
        )
        m.gauge(
            "swarmnode_uptime_seconds",
            "Seconds since the node started.",
            fn=lambda: round(self._now - self.started_at, 3),
            stats=("uptime_s",),
        )
        store = self.store
        m.gauge(
            "swarmnode_store_seq",
            "Sequence number of the store's latest committed change.",
            fn=lambda: store.seq,
            stats=("store", "seq"),
        )
        m.gauge(
            "swarmnode_store_disk_bytes",
            "Bytes the store's LMDB environment uses on disk.",
            fn=store.disk_bytes,
            stats=("store", "disk_bytes"),
        )
        m.gauge(
            "swarmnode_store_namespaces",
            "Namespaces the store holds.",
            fn=lambda: len(store.namespace_names()),
            stats=("store", "namespaces"),
        )
        m.counter(
            "swarmnode_store_read_cache_lookups_total",
            "Reads of the store's decoded-entry cache, by result (hit or miss).",
            labels=("result",),
            fn=lambda: _cache_lookups(store.read_cache_stats()),
        )
        m.gauge(
            "swarmnode_store_read_cache_bytes",
            "Bytes held by the store's decoded-entry cache.",
            fn=lambda: store.read_cache_stats()["bytes"],
        )

    @property
    def counters(self) -> dict[str, Any]:
        """The `counters` section of `stats`: drops, merge outcomes, repairs applied, sweeps."""
        return self.metrics.snapshot("counters")

    def _count_round(self, ev: RoundFinished) -> None:
        self._rounds[ev.ok].inc()
        if not ev.ok:
            self._ae_failures.append(f"{ev.peer[0]}:{ev.peer[1]}: {ev.reason or 'failed'}")
        self._keys_sent.inc(ev.keys_sent)
        self._keys_received.inc(ev.keys_received)
        self._digest_bytes.inc(ev.digest_bytes)
        self._state_bytes.inc(ev.state_bytes)

    def stats(self) -> dict[str, Any]:
        """The node's `stats`: its registry's snapshot (every layer that counts there) and
        what is not a metric: ids, the HLC, cache descriptions, refused peers, sums."""
        tree = self.metrics.snapshot()
        ae = tree["antientropy"]
        refused = [
            {
                "node_id": p.node_id,
                "address": f"{p.addr[0]}:{p.addr[1]}",
                "mismatches": [
                    {"setting": m.setting, "ours": m.ours, "theirs": m.theirs} for m in p.mismatches
                ],
                "since_s": round(self._now - p.since, 3),
            }
            for p in self.membership.refused()
        ]
        return merge_tree(
            tree,
            {
                "node_id": self.node_id,
                "address": f"{self.address[0]}:{self.address[1]}",
                "store": {"read_cache": self.store.read_cache_stats()},
                "antientropy": {
                    "keys_repaired": ae["keys_sent"] + ae["keys_received"],
                    "bytes_exchanged": ae["digest_bytes"] + ae["state_bytes"],
                    "failures": list(self._ae_failures),
                },
                "membership": {"refused": refused},
                "counters": {},
                "hlc": self.store.hlc.last,
                "consensus": self.consensus.status() if self.consensus is not None else None,
                "placement": self.placement.status(self._now),
            },
        )


def _cache_lookups(cache: dict[str, int]) -> dict[str, int]:
    return {"hit": cache["hits"], "miss": cache["misses"]}
