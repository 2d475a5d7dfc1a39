"""SWIM membership with Lifeguard's refinements, as a sans-IO state machine.

One `Membership` is one node's view of the cluster. The runtime feeds it time
(`tick`), peers' messages (`receive`) and the operator's intent (`join`,
`leave`), and carries out the `Output` it returns: messages to send and member
events. Nothing here reads a clock or draws from the global random generator,
so a simulator replays a whole cluster exactly from one seed.

The protocol (Das, Gupta, Motivala 2002; Lifeguard, Dadgar et al. 2018; with
hashicorp/memberlist as the reference implementation):

- Every probe interval one member is pinged, in a shuffled round robin. With no
  ack within the probe timeout, `indirect_checks` others are asked to ping it
  (ping_req); they answer nack when they get no ack either. With no ack by the
  end of the interval, the member becomes suspect.
- A suspicion expires into dead after a timeout that starts long and shrinks
  as other members independently confirm it. The suspect refutes by raising
  its incarnation; probes of a suspect carry the suspicion (Lifeguard's buddy
  system) so it learns quickly.
- A node that misses acks itself (or must refute) stretches its own probe
  timers (local health awareness).
- Facts (alive, suspect, dead, left) ride piggybacked on every message, and a
  small gossip round spreads them while any are pending. Push-pull exchanges
  the full state with one random member now and then.

What swarmnode adds for healing: dead and left members are remembered for
hours and one of them is sent a push-pull every reconnect interval; a member we
hold dead that talks to us is told so, and refutes. Two halves of a long
partition therefore merge again by themselves once the network heals. A member
that sends from the address of another member id proves that id was replaced.

What swarmnode adds for safety: some settings must be equal on every member (tree
shape, tombstone grace, clock offset, protocol version; `compat.py`). Every alive fact
carries them; a node refuses to take as a member anyone whose alive fact says
otherwise, drops every message such a peer sends (so it is never half-joined: no ack,
no gossip, no data), answers its join with its own alive fact only (so the peer learns
of the disagreement and logs it too), and logs the refusal at WARNING, once per
disagreement. A refused peer that comes back with matching settings is taken as usual.
The core logs this itself rather than leave it to a runtime: a refusal must be loud
whatever hosts the node, and it never touches the protocol's state.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from swarmnode.errors import DecodeError
from swarmnode.membership import messages as wire
from swarmnode.membership.awareness import Awareness
from swarmnode.membership.broadcasts import TransmitQueue, encoded_size, retransmit_limit
from swarmnode.membership.compat import Mismatch
from swarmnode.membership.config import MembershipConfig
from swarmnode.membership.events import (
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberSuspect,
    MemberUpdated,
    PeerRefused,
)
from swarmnode.membership.messages import Fact
from swarmnode.membership.state import MemberInfo, MemberState
from swarmnode.membership.suspicion import Suspicion, suspicion_bounds
from swarmnode.metrics import Registry
from swarmnode.sansio import Address, Message, Output

ALIVE, SUSPECT, DEAD, LEFT = MemberState

log = logging.getLogger("swarmnode.membership")

NACK_FRACTION = 0.8
"""A relay sends its nack after this share of the probe timeout (Lifeguard's value), so the
nack reaches the prober before the prober's own wait ends."""
PUSH_PULL_SCALE_THRESHOLD = 32
"""Above this many members the push-pull interval grows with log2(n / 32) (memberlist)."""
SMALL_PICK = 64
"""Up to this many live members, random picks filter the whole list; above it they sample."""
MAX_REFUSED = 1024
"""Refused peers remembered at most; the oldest is forgotten first (it is refused again,
and logged again, if it comes back)."""


@dataclass
class RefusedPeer:
    """A peer refused as a member because its cluster settings differ from this node's.

    `since` and `last` are runtime times of the refusal and of the latest message or fact
    that confirmed it; `messages` counts the messages from it that were dropped.
    """

    node_id: str
    addr: Address
    mismatches: tuple[Mismatch, ...]
    since: float
    last: float
    messages: int = 0


@dataclass
class _Member:
    node_id: str
    addr: Address
    meta: dict[str, Any]
    state: MemberState
    incarnation: int
    since: float
    suspicion: Suspicion | None = None


@dataclass
class _Probe:
    target: str
    incarnation: int
    seq: int
    indirect_at: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass
class _Relay:
    origin: Address
    origin_seq: int
    target: str
    deadline: float
    want_nack: bool


@dataclass
class _Timers:
    probe: float
    gossip: float
    push_pull: float
    join: float
    reconnect: float


@dataclass
class _Step:
    """The output of one call, plus helpers to fill it."""

    out: Output = field(default_factory=Output)

    def send(self, addr: Address, msg: Message) -> None:
        self.out.send.append((addr, msg))

    def emit(self, event: MemberEvent) -> None:
        self.out.events.append(event)


class Membership:
    """One node's SWIM view of the cluster. See the module docstring for the protocol."""

    def __init__(
        self,
        node_id: str,
        addr: Address,
        config: MembershipConfig,
        rng: random.Random,
        meta: dict[str, Any] | None = None,
        metrics: Registry | None = None,
    ) -> None:
        try:
            self.node_id = wire.node_id(node_id, "node_id")
            self.addr = wire.address(addr, "addr")
            self._meta = wire.check_meta(meta or {})
        except DecodeError as exc:
            raise ValueError(str(exc)) from None
        self.config = config
        self._rng = rng
        self._incarnation = 0
        self._left = False
        self._since = 0.0
        self._members: dict[str, _Member] = {}
        self._by_addr: dict[Address, dict[str, None]] = {}
        self._live: list[str] = []
        self._live_pos: dict[str, int] = {}
        self._gone: dict[str, None] = {}
        self._expiries: list[tuple[float, str]] = []
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._seq = 0
        self._queue = TransmitQueue()
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._seeds: list[Address] = []
        self._timers: _Timers | None = None
        self._cluster = config.cluster
        self._cluster_wire = config.cluster.to_wire()
        self._refused: dict[str, RefusedPeer] = {}
        self._refused_addrs: dict[Address, int] = {}
        self._declare_metrics(metrics if metrics is not None else Registry())

    def _declare_metrics(self, m: Registry) -> None:
        self._peers_refused = m.counter(
            "swarmnode_membership_peers_refused_total",
            "Peers refused as members because their cluster settings differ (a peer counts "
            "again when it comes back with other values).",
            stats=("membership", "peers_refused"),
        )
        self._messages_refused = m.counter(
            "swarmnode_membership_messages_refused_total",
            "Membership messages dropped because their sender is refused.",
            stats=("membership", "messages_refused"),
        )
        m.gauge(
            "swarmnode_membership_refused_peers",
            "Peers refused right now for their cluster settings.",
            fn=lambda: len(self._refused),
        )
        m.gauge(
            "swarmnode_members",
            "Members this node knows of (itself included), by state; a state no member is "
            "in is absent.",
            labels=("state",),
            fn=self._members_by_state,
            stats=("members", "{state}"),
        )
        m.gauge(
            "swarmnode_membership_incarnation",
            "This node's incarnation number (raised each time it refutes a suspicion).",
            fn=lambda: self._incarnation,
            stats=("incarnation",),
        )
        m.gauge(
            "swarmnode_membership_local_health",
            "Lifeguard awareness score: 0 is healthy; timers are stretched by score + 1.",
            fn=lambda: self._awareness.score,
            stats=("local_health",),
        )

    @property
    def stats(self) -> dict[str, int]:
        """`peers_refused` counts refusals (a peer, or a peer with new values);
        `messages_refused` the messages dropped because their sender is refused."""
        return {
            "peers_refused": self._peers_refused.value,
            "messages_refused": self._messages_refused.value,
        }

    def _members_by_state(self) -> dict[str, int]:
        states = Counter(m.state.label for m in self._members.values())
        states[(LEFT if self._left else ALIVE).label] += 1
        return dict(states)

    # ------------------------------------------------------------------ public API

    def join(self, now: float, seeds: list[Address]) -> Output:
        """Contact the seeds (push-pull); they are retried until some member is known alive."""
        if self._left:
            raise RuntimeError("a node that left cannot join again; start a new Membership")
        step = _Step()
        self._start(now)
        for seed in seeds:
            seed = (seed[0], seed[1])
            if seed != self.addr and seed not in self._seeds:
                self._seeds.append(seed)
        self._contact_seeds(now, step)
        return step.out

    def tick(self, now: float) -> Output:
        """Do whatever is due at `now`: probes, timeouts, suspicion expiry, gossip, retries."""
        step = _Step()
        timers = self._start(now)
        self._expire_relays(now, step)
        if now >= timers.gossip:
            timers.gossip = now + self.config.gossip_interval
            self._gossip_round(step)
        if self._left:
            return step.out
        self._advance_probe(now, step)
        self._expire_suspicions(now, step)
        if now >= timers.push_pull:
            timers.push_pull = now + self._push_pull_period()
            peer = self._pick_live(1, alive_only=True)
            if peer:
                msg = wire.push_pull(self.node_id, True, self._state(now))
                step.send(self._members[peer[0]].addr, msg)
        if self._seeds and not self._live and now >= timers.join:
            self._contact_seeds(now, step)
        if now >= timers.reconnect:
            timers.reconnect = now + self.config.reconnect_interval
            self._reconnect(now, step)
        return step.out

    def receive(self, now: float, sender: Address, msg: Message) -> Output:
        """Handle one message from `sender`, the gossip address it was sent from.

        Raises `DecodeError` (and changes nothing) if the message is malformed.
        """
        decoded = wire.decode(msg)
        step = _Step()
        self._start(now)
        if decoded.sender == self.node_id:
            return step.out
        if self._left:
            self._receive_after_leave(now, sender, decoded, step)
            return step.out
        if not self._admit_sender(now, sender, decoded, step):
            return step.out
        if not isinstance(decoded, wire.PushPull):
            for fact in decoded.gossip:
                self._apply(now, fact, decoded.sender, step)
        self._note_sender(now, sender, decoded.sender, step)
        match decoded:
            case wire.Ping():
                ack = wire.ack(self.node_id, decoded.seq, self.node_id, self._piggyback())
                step.send(sender, ack)
            case wire.Ack():
                self._on_ack(decoded, step)
            case wire.PingReq():
                self._on_ping_req(now, sender, decoded, step)
            case wire.Nack():
                if self._probe is not None and decoded.seq == self._probe.seq:
                    self._probe.nacks += 1
            case wire.PushPull():
                for fact in decoded.members:
                    self._merge_state(now, fact, decoded.sender, step)
                if decoded.reply_wanted:
                    step.send(sender, wire.push_pull(self.node_id, False, self._state(now)))
        return step.out

    def leave(self, now: float) -> Output:
        """Say goodbye: tell a few members at once and keep answering until the news spread.

        After leaving, the node stops probing and refuting; it is done for good.
        """
        step = _Step()
        self._start(now)
        if self._left:
            return step.out
        self._left = True
        self._since = now
        self._probe = None
        self._relays.clear()
        fact = self._self_fact().to_wire()
        self._queue.push(self.node_id, fact)
        fanout = self.config.gossip_nodes * self._retransmit_limit()
        for peer in self._pick_live(fanout, alive_only=False):
            step.send(self._members[peer].addr, wire.gossip(self.node_id, [fact]))
        return step.out

    def update_meta(self, now: float, meta: dict[str, Any]) -> Output:
        """Publish new metadata (raises ValueError if invalid); members see MemberUpdated."""
        try:
            self._meta = wire.check_meta(meta)
        except DecodeError as exc:
            raise ValueError(str(exc)) from None
        self._start(now)
        if not self._left:
            self._incarnation += 1
            self._queue.push(self.node_id, self._self_fact().to_wire())
        return Output()

    def members(self) -> list[MemberInfo]:
        """Every member remembered, this node first, then by node id."""
        others = [
            MemberInfo(m.node_id, m.addr, m.state, m.incarnation, m.since, dict(m.meta))
            for m in sorted(self._members.values(), key=lambda m: m.node_id)
        ]
        return [self._self_info(), *others]

    def member(self, node_id: str) -> MemberInfo | None:
        """One member's snapshot (this node included), None if not remembered."""
        if node_id == self.node_id:
            return self._self_info()
        m = self._members.get(node_id)
        if m is None:
            return None
        return MemberInfo(m.node_id, m.addr, m.state, m.incarnation, m.since, dict(m.meta))

    def _self_info(self) -> MemberInfo:
        state = LEFT if self._left else ALIVE
        return MemberInfo(
            self.node_id, self.addr, state, self._incarnation, self._since, dict(self._meta)
        )

    def refused(self) -> list[RefusedPeer]:
        """Peers refused because their cluster settings differ, by node id."""
        return [self._refused[k] for k in sorted(self._refused)]

    def refuses(self, addr: Address) -> bool:
        """Whether a refused peer was last heard from `addr`; the node should drop the
        replication messages (deltas, anti-entropy) it sends as well."""
        return addr in self._refused_addrs

    def live_peers(self) -> list[tuple[str, Address]]:
        """Alive and suspect members other than this node."""
        return [(node_id, self._members[node_id].addr) for node_id in self._live]

    def address_of(self, node_id: str) -> Address | None:
        """The last known address of any remembered member, whatever its state."""
        if node_id == self.node_id:
            return self.addr
        member = self._members.get(node_id)
        return member.addr if member else None

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def local_health(self) -> int:
        """Lifeguard awareness score: 0 is healthy; timers are stretched by score + 1."""
        return self._awareness.score

    def next_deadline(self) -> float | None:
        """When `tick` next has work; None before the first `join`/`tick` or once idle for good."""
        timers = self._timers
        if timers is None:
            return None
        due: list[float] = []
        if self._queue and self._live:
            due.append(timers.gossip)
        if self._relays:
            due.append(next(iter(self._relays.values())).deadline)
        if self._left:
            return min(due, default=None)
        if self._live or self._probe is not None:
            due.append(timers.probe)
            due.append(timers.push_pull)
        if self._probe is not None and not self._probe.indirect_sent:
            due.append(self._probe.indirect_at)
        while self._expiries and self._stale_expiry(*self._expiries[0]):
            heapq.heappop(self._expiries)
        if self._expiries:
            due.append(self._expiries[0][0])
        if self._seeds and not self._live:
            due.append(timers.join)
        if self._gone:
            due.append(timers.reconnect)
        return min(due, default=None)

    def periodic_deadline(self) -> float | None:
        """When the next periodic timer fires, even one that will find nothing to do.

        `tick` re-arms the gossip, probe, push-pull and reconnect timers when
        they fire idle; a runtime that must reproduce a fixed-interval schedule
        exactly (the simulator's deadline mode) wakes at these too.
        """
        timers = self._timers
        if timers is None:
            return None
        if self._left:
            return timers.gossip
        return min(timers.gossip, timers.probe, timers.push_pull, timers.reconnect)

    def assert_invariants(self) -> None:
        """Check every structural invariant (O(n)); the simulator calls it between steps."""
        assert self.node_id not in self._members
        expiries = set(self._expiries)
        assert len(self._live) == len(self._live_pos)
        for pos, node_id in enumerate(self._live):
            assert self._live_pos[node_id] == pos
        for node_id, member in self._members.items():
            assert member.node_id == node_id
            assert (node_id in self._live_pos) == member.state.live
            assert (node_id in self._gone) == (not member.state.live)
            assert (member.suspicion is not None) == (member.state is SUSPECT)
            if member.suspicion is not None:
                assert (member.suspicion.deadline, node_id) in expiries
            assert node_id in self._by_addr[member.addr]
        assert sum(len(ids) for ids in self._by_addr.values()) == len(self._members)
        assert len(self._relays) <= self.config.max_pending_relays
        assert len(self._refused) <= MAX_REFUSED
        addrs: dict[Address, int] = {}
        for refused in self._refused.values():
            addrs[refused.addr] = addrs.get(refused.addr, 0) + 1
        assert addrs == self._refused_addrs
        for node_id in self._refused:
            member = self._members.get(node_id)
            assert member is None or not member.state.live, f"refused {node_id} is live"
        assert 0 <= self._awareness.score < self.config.awareness_max_multiplier

    # ------------------------------------------------------------------ timers

    def _start(self, now: float) -> _Timers:
        """Arm the timers on first use, staggered so that nodes started together drift apart."""
        if self._timers is None:
            config = self.config
            self._since = now
            self._timers = _Timers(
                probe=now + self._rng.uniform(0, config.probe_interval),
                gossip=now + config.gossip_interval,
                push_pull=now + self._rng.uniform(0.5, 1.0) * config.push_pull_interval,
                join=now + config.join_retry_interval,
                reconnect=now + self._rng.uniform(0.5, 1.0) * config.reconnect_interval,
            )
            self._queue.push(self.node_id, self._self_fact().to_wire())
        return self._timers

    def _push_pull_period(self) -> float:
        live = len(self._live) + 1
        if live <= PUSH_PULL_SCALE_THRESHOLD:
            return self.config.push_pull_interval
        scale = math.ceil(math.log2(live) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1
        return self.config.push_pull_interval * scale

    def _retransmit_limit(self) -> int:
        return retransmit_limit(self.config.retransmit_mult, len(self._live) + 1)

    # ------------------------------------------------------------------ probing

    def _advance_probe(self, now: float, step: _Step) -> None:
        probe = self._probe
        if probe is not None and not probe.indirect_sent and now >= probe.indirect_at:
            probe.indirect_sent = True
            target = self._members.get(probe.target)
            if target is not None and target.state.live:
                relays = self._pick_live(
                    self.config.indirect_checks, alive_only=True, exclude=probe.target
                )
                for relay in relays:
                    msg = wire.ping_req(
                        self.node_id, probe.seq, probe.target, target.addr, self._piggyback()
                    )
                    step.send(self._members[relay].addr, msg)
                probe.expected_nacks = len(relays)
        assert self._timers is not None
        if now < self._timers.probe:
            return
        if probe is not None:
            self._probe = None
            self._probe_failed(now, probe, step)
        self._timers.probe = now + self._awareness.scale(self.config.probe_interval)
        target_id = self._next_probe_target()
        if target_id is None:
            return
        target = self._members[target_id]
        self._seq += 1
        self._probe = _Probe(
            target_id,
            target.incarnation,
            self._seq,
            now + self._awareness.scale(self.config.probe_timeout),
        )
        facts: list[dict[str, Any]] = []
        budget = self.config.max_piggyback_bytes
        if target.state is SUSPECT:
            buddy = Fact(target_id, target.incarnation, SUSPECT, by=self.node_id).to_wire()
            facts.append(buddy)
            budget -= encoded_size(buddy)
        facts.extend(self._queue.take(budget, self._retransmit_limit()))
        step.send(target.addr, wire.ping(self.node_id, self._seq, target_id, facts))

    def _probe_failed(self, now: float, probe: _Probe, step: _Step) -> None:
        if probe.expected_nacks > 0:
            self._awareness.apply(max(0, probe.expected_nacks - probe.nacks))
        else:
            self._awareness.apply(1)
        target = self._members.get(probe.target)
        if target is None or not target.state.live or target.incarnation != probe.incarnation:
            return
        if target.state is SUSPECT:
            assert target.suspicion is not None
            if target.suspicion.confirm(self.node_id):
                self._arm_expiry(target)
                self._broadcast(self._fact(target, by=self.node_id))
            return
        self._suspect(now, target, self.node_id, step)

    def _next_probe_target(self) -> str | None:
        """Shuffled round robin over live members (SWIM's bounded time to first detection)."""
        for _ in range(len(self._probe_order) + len(self._live) + 1):
            if self._probe_index >= len(self._probe_order):
                self._probe_order = list(self._live)
                self._rng.shuffle(self._probe_order)
                self._probe_index = 0
                if not self._probe_order:
                    return None
            candidate = self._probe_order[self._probe_index]
            self._probe_index += 1
            member = self._members.get(candidate)
            if member is not None and member.state.live:
                return candidate
        return None

    def _on_ack(self, ack: wire.Ack, step: _Step) -> None:
        probe = self._probe
        if probe is not None and ack.seq == probe.seq:
            if ack.target == probe.target:
                self._probe = None
                self._awareness.apply(-1)
            return
        relay = self._relays.get(ack.seq)
        if relay is not None and ack.target == relay.target:
            del self._relays[ack.seq]
            forward = wire.ack(self.node_id, relay.origin_seq, relay.target, self._piggyback())
            step.send(relay.origin, forward)

    def _on_ping_req(self, now: float, sender: Address, req: wire.PingReq, step: _Step) -> None:
        if req.target == self.node_id:
            step.send(sender, wire.ack(self.node_id, req.seq, self.node_id, self._piggyback()))
            return
        if len(self._relays) >= self.config.max_pending_relays:
            return
        self._seq += 1
        deadline = now + self.config.probe_timeout * NACK_FRACTION
        self._relays[self._seq] = _Relay(sender, req.seq, req.target, deadline, req.want_nack)
        step.send(
            req.target_addr, wire.ping(self.node_id, self._seq, req.target, self._piggyback())
        )

    def _expire_relays(self, now: float, step: _Step) -> None:
        """Relays expire in the order they were made, since they all wait the same time."""
        while self._relays:
            seq, relay = next(iter(self._relays.items()))
            if now < relay.deadline:
                return
            del self._relays[seq]
            if relay.want_nack and not self._left:
                step.send(relay.origin, wire.nack(self.node_id, relay.origin_seq, []))

    # ------------------------------------------------------------------ suspicion

    def _suspect(self, now: float, member: _Member, by: str, step: _Step) -> None:
        live = len(self._live) + 1
        config = self.config
        shortest, longest = suspicion_bounds(
            config.suspicion_mult, config.suspicion_max_timeout_mult, live, config.probe_interval
        )
        expected = config.suspicion_mult - 2 if live - 2 >= config.suspicion_mult - 2 else 0
        self._set_state(now, member, SUSPECT)
        member.suspicion = Suspicion(now, by, shortest, longest, max(0, expected))
        self._arm_expiry(member)
        step.emit(MemberSuspect(member.node_id, member.addr, member.incarnation))
        self._broadcast(self._fact(member, by=by))

    def _arm_expiry(self, member: _Member) -> None:
        """Queue the suspicion's (new) deadline; superseded entries are skipped when popped."""
        assert member.suspicion is not None
        heapq.heappush(self._expiries, (member.suspicion.deadline, member.node_id))

    def _stale_expiry(self, deadline: float, node_id: str) -> bool:
        member = self._members.get(node_id)
        return member is None or member.suspicion is None or member.suspicion.deadline != deadline

    def _expire_suspicions(self, now: float, step: _Step) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            deadline, node_id = heapq.heappop(self._expiries)
            if not self._stale_expiry(deadline, node_id):
                member = self._members[node_id]
                self._declare(now, member, DEAD, member.incarnation, step)

    # ------------------------------------------------------------------ facts

    def _apply(self, now: float, fact: Fact, sender_id: str, step: _Step) -> None:
        """Apply one gossiped fact under SWIM's precedence rules."""
        if fact.node_id == self.node_id:
            self._hear_about_self(fact)
        elif fact.state is ALIVE:
            self._apply_alive(now, fact, step)
        elif fact.state is SUSPECT:
            self._apply_suspect(now, fact, fact.by or sender_id, step)
        elif fact.state is DEAD:
            member = self._members.get(fact.node_id)
            if member is not None:
                self._apply_dead(now, member, fact.incarnation, step)
        else:
            self._apply_left(now, fact, step)

    def _merge_state(self, now: float, fact: Fact, sender_id: str, step: _Step) -> None:
        """Merge one entry of a peer's full state.

        A peer's belief that a member is dead is taken as a suspicion (memberlist does
        the same): our own probes then confirm it, or the member refutes. This is what
        revives members after a healed partition without killing healthy ones.
        """
        if fact.node_id == self.node_id:
            self._hear_about_self(fact)
            return
        if fact.state is ALIVE:
            self._apply_alive(now, fact, step)
            return
        if fact.state is LEFT:
            self._apply_left(now, fact, step)
            return
        member = self._members.get(fact.node_id)
        assert fact.addr is not None
        if member is None:
            if fact.state is DEAD:
                if fact.addr != self.addr:
                    self._add(now - (fact.age or 0.0), fact, DEAD)
                return
            alive = Fact(fact.node_id, fact.incarnation, ALIVE, fact.addr, settings=fact.settings)
            self._apply_alive(now, alive, step)
            member = self._members.get(fact.node_id)
            if member is None:
                return
        if member.state.live:
            self._apply_suspect(now, Fact(fact.node_id, fact.incarnation, SUSPECT), sender_id, step)
        elif fact.incarnation > member.incarnation:
            member.incarnation = fact.incarnation

    def _hear_about_self(self, fact: Fact) -> None:
        """Refute any claim about this node newer than what it said itself."""
        if self._left or fact.incarnation < self._incarnation:
            return
        if (
            fact.state is ALIVE
            and fact.incarnation == self._incarnation
            and fact.addr == self.addr
            and (fact.meta or {}) == self._meta
        ):
            return
        if fact.state is not ALIVE:
            self._awareness.apply(1)
        self._incarnation = fact.incarnation + 1
        self._queue.push(self.node_id, self._self_fact().to_wire())

    def _apply_alive(self, now: float, fact: Fact, step: _Step) -> None:
        assert fact.addr is not None
        member = self._members.get(fact.node_id)
        if fact.addr == self.addr:
            # Another id at this node's own address: a former occupant this node replaced.
            if member is not None and member.state.live:
                self._declare(now, member, DEAD, member.incarnation, step)
            return
        if member is None or fact.incarnation > member.incarnation:
            # Only a fact that would add or change a member is judged: the rest are ignored.
            mismatches = self._cluster.mismatches(fact.settings)
            if mismatches:
                self._refuse(now, fact, mismatches, step)
                return
            self._readmit(fact.node_id)
        if member is None:
            member = self._add(now, fact, ALIVE)
            step.emit(MemberJoined(member.node_id, member.addr, member.incarnation))
            self._broadcast(self._fact(member))
            return
        if fact.incarnation <= member.incarnation:
            return
        meta = fact.meta or {}
        changed = member.addr != fact.addr or member.meta != meta
        previous = member.state
        member.incarnation = fact.incarnation
        if changed:
            self._move(member, fact.addr)
            member.meta = meta
        if previous is not ALIVE:
            self._set_state(now, member, ALIVE)
            step.emit(MemberAlive(member.node_id, member.addr, member.incarnation))
        elif changed:
            step.emit(MemberUpdated(member.node_id, member.addr, member.incarnation))
        self._broadcast(self._fact(member))

    def _apply_suspect(self, now: float, fact: Fact, by: str, step: _Step) -> None:
        member = self._members.get(fact.node_id)
        if member is None or not member.state.live or fact.incarnation < member.incarnation:
            return
        if member.state is SUSPECT:
            assert member.suspicion is not None
            member.incarnation = fact.incarnation
            if member.suspicion.confirm(by):
                self._arm_expiry(member)
                self._broadcast(self._fact(member, by=by))
            return
        member.incarnation = fact.incarnation
        self._suspect(now, member, by, step)

    def _apply_dead(self, now: float, member: _Member, incarnation: int, step: _Step) -> None:
        if incarnation < member.incarnation:
            return
        if incarnation == member.incarnation and not member.state.live:
            return
        self._declare(now, member, DEAD, incarnation, step)

    def _apply_left(self, now: float, fact: Fact, step: _Step) -> None:
        member = self._members.get(fact.node_id)
        if member is None:
            if fact.addr is not None and fact.addr != self.addr:
                self._add(now - (fact.age or 0.0), fact, LEFT)
            return
        if fact.incarnation < member.incarnation:
            return
        if member.state is LEFT and fact.incarnation == member.incarnation:
            return
        self._declare(now, member, LEFT, fact.incarnation, step)

    def _declare(
        self, now: float, member: _Member, state: MemberState, incarnation: int, step: _Step
    ) -> None:
        """Make `member` dead or left at `incarnation`, report it if it was news, spread it."""
        assert state in (DEAD, LEFT) and incarnation >= member.incarnation
        previous = member.state
        member.incarnation = incarnation
        if previous is not state:
            self._set_state(now, member, state)
            event = MemberDead if state is DEAD else MemberLeft
            step.emit(event(member.node_id, member.addr, member.incarnation))
        self._broadcast(self._fact(member, by=self.node_id if state is DEAD else None))

    # ------------------------------------------------------------------ cluster settings

    def _admit_sender(
        self, now: float, sender: Address, decoded: wire.Decoded, step: _Step
    ) -> bool:
        """Whether to handle a message at all, judged by its sender's own settings.

        A message that carries the sender's alive fact is judged by it: a sender whose
        settings differ is refused and the whole message dropped (its other facts describe
        its own, equally incompatible, cluster); a join is answered with this node's alive
        fact alone, so the sender learns why. A message without that fact is dropped if
        its sender is refused, and handled otherwise.
        """
        facts = decoded.members if isinstance(decoded, wire.PushPull) else decoded.gossip
        own = next((f for f in facts if f.node_id == decoded.sender and f.state is ALIVE), None)
        if own is not None:
            mismatches = self._cluster.mismatches(own.settings)
            if not mismatches:
                self._readmit(own.node_id)
                return True
            self._refuse(now, own, mismatches, step)
            if isinstance(decoded, wire.PushPull) and decoded.reply_wanted:
                mine = [self._self_fact().to_wire()]
                step.send(sender, wire.push_pull(self.node_id, False, mine))
        elif decoded.sender not in self._refused:
            return True
        refused = self._refused[decoded.sender]
        refused.messages += 1
        refused.last = now
        self._messages_refused.inc()
        return False

    def _refuse(self, now: float, fact: Fact, mismatches: list[Mismatch], step: _Step) -> None:
        """Keep the member of `fact` out, and say so loudly the first time."""
        assert fact.addr is not None
        known = self._refused.get(fact.node_id)
        if known is not None and known.mismatches == tuple(mismatches):
            if known.addr != fact.addr:
                self._drop_refusal(fact.node_id)
                known.addr = fact.addr
                self._keep_refusal(known)
            known.last = now
        else:
            self._drop_refusal(fact.node_id)
            self._keep_refusal(RefusedPeer(fact.node_id, fact.addr, tuple(mismatches), now, now))
            if len(self._refused) > MAX_REFUSED:
                self._drop_refusal(next(iter(self._refused)))
            self._peers_refused.inc()
            for m in mismatches:
                log.warning(
                    "event=peer_refused peer=%s addr=%s:%d %s node_id=%s",
                    fact.node_id,
                    *fact.addr,
                    m.describe(),
                    self.node_id,
                )
            step.emit(PeerRefused(fact.node_id, fact.addr, tuple(mismatches)))
        member = self._members.get(fact.node_id)
        if member is not None and member.state.live:
            # A member that came back with other settings: out, and everyone told so.
            incarnation = max(member.incarnation, fact.incarnation)
            self._declare(now, member, DEAD, incarnation, step)

    def _readmit(self, node_id: str) -> None:
        """Forget a refusal: the peer now says it shares this node's settings."""
        if self._drop_refusal(node_id):
            log.info("event=peer_readmitted peer=%s node_id=%s", node_id, self.node_id)

    def _forget_refusals(self, now: float) -> None:
        horizon = now - self.config.dead_retention
        for node_id in [k for k, r in self._refused.items() if r.last < horizon]:
            self._drop_refusal(node_id)

    def _keep_refusal(self, refused: RefusedPeer) -> None:
        self._refused[refused.node_id] = refused
        self._refused_addrs[refused.addr] = self._refused_addrs.get(refused.addr, 0) + 1

    def _drop_refusal(self, node_id: str) -> bool:
        refused = self._refused.pop(node_id, None)
        if refused is None:
            return False
        left = self._refused_addrs[refused.addr] - 1
        if left:
            self._refused_addrs[refused.addr] = left
        else:
            del self._refused_addrs[refused.addr]
        return True

    # ------------------------------------------------------------------ healing

    def _note_sender(self, now: float, sender: Address, sender_id: str, step: _Step) -> None:
        """Learn what the mere arrival of a message proves.

        A message from `sender` signed by `sender_id` proves that no other id lives at
        that address any more (a node restarted there with a new id). A member we hold
        dead that talks to us is alive after all: tell it, so that it refutes.
        """
        for other in list(self._by_addr.get(sender, ())):
            member = self._members[other]
            if other != sender_id and member.state.live:
                self._declare(now, member, DEAD, member.incarnation, step)
        member = self._members.get(sender_id)
        if member is not None and member.state is DEAD:
            fact = self._fact(member, by=self.node_id)
            step.send(sender, wire.gossip(self.node_id, [fact]))

    def _contact_seeds(self, now: float, step: _Step) -> None:
        assert self._timers is not None
        self._timers.join = now + self.config.join_retry_interval
        if not self._seeds:
            return
        msg = wire.push_pull(self.node_id, True, self._state(now))
        for seed in self._seeds:
            step.send(seed, msg)

    def _reconnect(self, now: float, step: _Step) -> None:
        """Forget members gone for longer than the retention; push-pull with one of the rest."""
        retention = self.config.dead_retention
        self._forget_refusals(now)
        for node_id in list(self._gone):
            member = self._members[node_id]
            if now - member.since >= retention:
                self._forget(member)
        if self._gone:
            node_id = self._rng.choice(list(self._gone))
            msg = wire.push_pull(self.node_id, True, self._state(now))
            step.send(self._members[node_id].addr, msg)

    def _receive_after_leave(
        self, now: float, sender: Address, decoded: wire.Decoded, step: _Step
    ) -> None:
        """A node that left still answers, so that its news keeps spreading, but judges nobody."""
        if isinstance(decoded, wire.Ping):
            step.send(sender, wire.ack(self.node_id, decoded.seq, self.node_id, self._piggyback()))
        elif isinstance(decoded, wire.PushPull) and decoded.reply_wanted:
            step.send(sender, wire.push_pull(self.node_id, False, self._state(now)))

    # ------------------------------------------------------------------ bookkeeping

    def _add(self, since: float, fact: Fact, state: MemberState) -> _Member:
        assert fact.addr is not None and fact.node_id not in self._members
        member = _Member(
            fact.node_id, fact.addr, dict(fact.meta or {}), state, fact.incarnation, since
        )
        self._members[member.node_id] = member
        self._by_addr.setdefault(member.addr, {})[member.node_id] = None
        if state.live:
            self._enter_live(member.node_id)
        else:
            self._gone[member.node_id] = None
        return member

    def _forget(self, member: _Member) -> None:
        assert not member.state.live
        del self._members[member.node_id]
        del self._gone[member.node_id]
        ids = self._by_addr[member.addr]
        del ids[member.node_id]
        if not ids:
            del self._by_addr[member.addr]

    def _move(self, member: _Member, addr: Address) -> None:
        ids = self._by_addr[member.addr]
        del ids[member.node_id]
        if not ids:
            del self._by_addr[member.addr]
        member.addr = addr
        self._by_addr.setdefault(addr, {})[member.node_id] = None

    def _set_state(self, now: float, member: _Member, state: MemberState) -> None:
        if member.state.live and not state.live:
            self._leave_live(member.node_id)
            self._gone[member.node_id] = None
        elif state.live and not member.state.live:
            del self._gone[member.node_id]
            self._enter_live(member.node_id)
        if member.state is SUSPECT and state is not SUSPECT:
            member.suspicion = None
        member.state = state
        member.since = now

    def _enter_live(self, node_id: str) -> None:
        assert node_id not in self._live_pos
        self._live_pos[node_id] = len(self._live)
        self._live.append(node_id)
        position = self._rng.randint(self._probe_index, len(self._probe_order))
        self._probe_order.insert(position, node_id)

    def _leave_live(self, node_id: str) -> None:
        pos = self._live_pos.pop(node_id)
        last = self._live.pop()
        if last != node_id:
            self._live[pos] = last
            self._live_pos[last] = pos

    def _pick_live(self, k: int, *, alive_only: bool, exclude: str | None = None) -> list[str]:
        """Up to k distinct random live members, other than `exclude`."""
        if k <= 0:
            return []

        def fits(node_id: str) -> bool:
            if node_id == exclude:
                return False
            return not alive_only or self._members[node_id].state is ALIVE

        if len(self._live) <= SMALL_PICK:
            candidates = [node_id for node_id in self._live if fits(node_id)]
            return self._rng.sample(candidates, min(k, len(candidates)))
        picked: dict[str, None] = {}
        for _ in range(4 * k):
            node_id = self._live[self._rng.randrange(len(self._live))]
            if fits(node_id):
                picked[node_id] = None
                if len(picked) == k:
                    break
        return list(picked)

    def _gossip_round(self, step: _Step) -> None:
        if not self._queue:
            return
        for peer in self._pick_live(self.config.gossip_nodes, alive_only=False):
            facts = self._piggyback()
            if not facts:
                return
            step.send(self._members[peer].addr, wire.gossip(self.node_id, facts))

    def _piggyback(self) -> list[dict[str, Any]]:
        return self._queue.take(self.config.max_piggyback_bytes, self._retransmit_limit())

    def _broadcast(self, fact: dict[str, Any]) -> None:
        self._queue.push(fact["n"], fact)

    def _fact(self, member: _Member, by: str | None = None) -> dict[str, Any]:
        """A member's fact for gossip. Every member shares this node's settings (those that
        do not are refused), so alive facts carry this node's own."""
        alive = member.state is ALIVE
        return Fact(
            member.node_id,
            member.incarnation,
            member.state,
            member.addr if alive else None,
            member.meta if alive else None,
            by,
            settings=self._cluster_wire if alive else None,
        ).to_wire()

    def _self_fact(self) -> Fact:
        if self._left:
            return Fact(self.node_id, self._incarnation, LEFT, self.addr)
        return Fact(
            self.node_id,
            self._incarnation,
            ALIVE,
            self.addr,
            self._meta or None,
            settings=self._cluster_wire,
        )

    def _state(self, now: float) -> list[dict[str, Any]]:
        """This node's full view for push-pull: every member with its address, age if gone."""
        entries = [self._self_fact().to_wire()]
        for member in self._members.values():
            live = member.state.live
            age = None if live else max(0.0, now - member.since)
            meta = member.meta if member.state is ALIVE else None
            settings = self._cluster_wire if live else None
            fact = Fact(
                member.node_id,
                member.incarnation,
                member.state,
                member.addr,
                meta,
                None,
                age,
                settings,
            )
            entries.append(fact.to_wire())
        return entries
