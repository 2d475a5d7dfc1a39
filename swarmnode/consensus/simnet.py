"""A deterministic simulation of a Raft group: virtual time, a faulty network, crashes.

Each node is the real `Raft`, a real storage (`MemoryStorage`, or `LmdbStorage`
that survives a crash as a process's would), the real `StateMachine` and
`LeaseKeeper`, driven by the full Ready contract exactly as a runtime must:
persist, then send, then restore/apply, then advance. A persist may take
`disk_ms`, during which messages keep arriving (steps between `ready` and
`advance`); a node that crashes before its write completes loses that Ready.

The network delivers each message after a latency drawn from `latency_ms`,
drops, duplicates (and, since latencies vary, reorders) at the given rates,
and honours one-way link cuts, partitions and isolation. Every message goes
through the wire codec (`messages.encode`, msgpack, `messages.decode`).
Everything random comes from one `random.Random(seed)`, so a seed replays a
run exactly. With `oracles` set, Raft's safety properties are checked after
every step.
"""

from __future__ import annotations

import heapq
import itertools
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from swarmnode.consensus import messages
from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.leases import LeaseKeeper
from swarmnode.consensus.machine import StateMachine
from swarmnode.consensus.oracles import RaftOracles
from swarmnode.consensus.raft import NotLeader, ProposalDropped, Raft
from swarmnode.consensus.ready import RaftReady, Role
from swarmnode.consensus.records import EntryKind
from swarmnode.consensus.storage import LmdbStorage, MemoryStorage, RaftStorage, bootstrap

Callback = Callable[[dict[str, Any] | None], None]
"""Told the result of a proposal once applied, or None when its outcome is unknown
(the entry was replaced, the node crashed, or a snapshot covered it)."""


def uniform_latency(lo: float, hi: float) -> Callable[[random.Random], float]:
    return lambda rng: rng.uniform(lo, hi)


def lan_latency(rng: random.Random) -> float:
    """One-way LAN latency in ms: a log-normal body around 0.25 ms (median) with a tail
    (1% of messages wait 2 to 10 ms behind a busy queue or a retransmission)."""
    if rng.random() < 0.01:
        return rng.uniform(2.0, 10.0)
    return rng.lognormvariate(-1.4, 0.5)


@dataclass
class NetFaults:
    drop: float = 0.0
    duplicate: float = 0.0
    blocked: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class SimNode:
    id: str
    storage: RaftStorage
    raft: Raft | None = None
    machine: StateMachine | None = None
    keeper: LeaseKeeper | None = None
    alive: bool = False
    incarnation: int = 0
    busy: bool = False
    pending: dict[int, tuple[int, Callback]] = field(default_factory=dict)
    crashes: int = 0


class SimCluster:
    def __init__(
        self,
        node_ids: Iterable[str],
        *,
        config: RaftConfig,
        seed: int,
        voters: Iterable[str] | None = None,
        latency_ms: Callable[[random.Random], float] | None = None,
        disk_ms: float = 0.0,
        storage: str = "memory",
        oracles: RaftOracles | None = None,
        snapshots: bool = True,
    ) -> None:
        self.cfg = config
        self.seed = seed
        self.rng = random.Random(seed)
        self.latency_ms = latency_ms or uniform_latency(0.2, 2.0)
        self.disk_ms = disk_ms
        self.faults = NetFaults()
        self.oracles = oracles
        self.snapshots = snapshots
        self.now_ms = 0.0
        self.tick_ms = config.tick_interval * 1000.0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._tmp: Path | None = None
        self.listeners: list[Callable[[str, str, Any], None]] = []
        """Called as (node, event, detail) for 'role' (a new SoftState), 'leader' (became
        leader, with its term), 'apply', 'read' and 'send'."""
        self.counters = {"sent": 0, "delivered": 0, "dropped": 0, "bytes": 0}
        ids = list(node_ids)
        if storage == "lmdb":
            self._tmp = Path(tempfile.mkdtemp(prefix="raftsim-"))
        self.nodes: dict[str, SimNode] = {}
        first = sorted(voters) if voters is not None else sorted(ids)
        for node_id in ids:
            store: RaftStorage
            if storage == "lmdb":
                assert self._tmp is not None
                store = LmdbStorage(self._tmp / node_id, map_size=256 << 20, sync=False)
            else:
                store = MemoryStorage()
            if node_id in first:
                bootstrap(store, first)
            self.nodes[node_id] = SimNode(node_id, store)
        for node_id in ids:
            node = self.nodes[node_id]
            self._start(node)
            if oracles is not None:
                assert node.raft is not None
                oracles.on_boot(node_id, node.raft)
            self._drain(node)

    def close(self) -> None:
        for node in self.nodes.values():
            if isinstance(node.storage, LmdbStorage):
                node.storage.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ---- time ----------------------------------------------------------------------------

    def schedule(self, delay_ms: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._queue, (self.now_ms + delay_ms, next(self._seq), fn, args))

    def run_for(self, ms: float) -> None:
        self.run_until(self.now_ms + ms)

    def run_until(self, t_ms: float) -> None:
        while self._queue and self._queue[0][0] <= t_ms:
            when, _, fn, args = heapq.heappop(self._queue)
            self.now_ms = when
            fn(*args)
        self.now_ms = max(self.now_ms, t_ms)

    def run_until_true(self, predicate: Callable[[], bool], timeout_ms: float) -> bool:
        """Run until `predicate()` holds (checked after every event), at most `timeout_ms`."""
        end = self.now_ms + timeout_ms
        while not predicate():
            if not self._queue or self._queue[0][0] > end:
                self.now_ms = end
                return predicate()
            when, _, fn, args = heapq.heappop(self._queue)
            self.now_ms = when
            fn(*args)
        return True

    # ---- faults --------------------------------------------------------------------------

    def cut(self, a: str, b: str, both: bool = True) -> None:
        self.faults.blocked.add((a, b))
        if both:
            self.faults.blocked.add((b, a))

    def partition(self, *groups: Iterable[str]) -> None:
        """Only nodes of the same group can talk (nodes in no group are cut from all)."""
        sets = [set(g) for g in groups]
        self.faults.blocked = {
            (a, b)
            for a in self.nodes
            for b in self.nodes
            if a != b and not any(a in s and b in s for s in sets)
        }

    def isolate(self, node: str) -> None:
        for other in self.nodes:
            if other != node:
                self.cut(node, other)

    def heal(self) -> None:
        self.faults.blocked = set()

    def crash(self, node_id: str) -> None:
        """Stop the process: memory is lost, storage keeps what was persisted."""
        node = self.nodes[node_id]
        if not node.alive:
            return
        node.alive = False
        node.crashes += 1
        node.incarnation += 1
        node.raft = node.machine = node.keeper = None
        node.busy = False
        pending, node.pending = node.pending, {}
        for _, callback in pending.values():
            callback(None)
        if isinstance(node.storage, LmdbStorage):
            node.storage.close()
            assert self._tmp is not None
            node.storage = LmdbStorage(self._tmp / node_id, map_size=256 << 20, sync=False)

    def restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if not node.alive:
            self._start(node)
            if self.oracles is not None:
                assert node.raft is not None
                self.oracles.on_restart(node_id, node.raft)
            self._drain(node)

    def _start(self, node: SimNode) -> None:
        node.incarnation += 1
        node.raft = Raft(node.id, self.cfg, node.storage, random.Random(self.rng.random()))
        node.machine = StateMachine.restore(node.raft.snapshot.data)
        node.keeper = LeaseKeeper(self.cfg.lease_expiry_margin)
        node.alive = True
        node.busy = False
        phase = self.rng.uniform(0, self.tick_ms)
        self.schedule(phase, self._tick, node, node.incarnation)

    # ---- clients -------------------------------------------------------------------------

    def leader(self) -> str | None:
        """The live leader of the highest term, if any."""
        best: tuple[int, str] | None = None
        for node in self.nodes.values():
            raft = node.raft
            if node.alive and raft is not None and raft.role is Role.LEADER:
                best = max(best or (raft.term, node.id), (raft.term, node.id))
        return best[1] if best else None

    def leader_raft(self) -> Raft | None:
        """The Raft of `leader()`, if there is one."""
        leader = self.leader()
        return None if leader is None else self.nodes[leader].raft

    def change_pending(self) -> bool:
        """True when there is no leader or its last configuration change is not committed
        (so none may be proposed yet)."""
        raft = self.leader_raft()
        return raft is None or raft.pending_conf_index > raft.committed

    def leaders(self) -> list[tuple[str, Raft]]:
        return [
            (n.id, n.raft)
            for n in self.nodes.values()
            if n.alive and n.raft is not None and n.raft.role is Role.LEADER
        ]

    def propose(self, node_id: str, data: bytes, callback: Callback) -> tuple[int, int]:
        """Propose on `node_id`; raises NotLeader/ProposalDropped like `Raft.propose`."""
        node = self.nodes[node_id]
        if not node.alive or node.raft is None:
            raise NotLeader(None)
        index, term = node.raft.propose(data)
        node.pending[index] = (term, callback)
        self._drain(node)
        return index, term

    def read_index(self, node_id: str, context: bytes) -> None:
        node = self.nodes[node_id]
        if not node.alive or node.raft is None:
            raise NotLeader(None)
        node.raft.read_index(context)
        self._drain(node)

    def step_node(self, node_id: str, fn: Callable[[Raft], Any]) -> Any:
        """Run `fn` on a live node's Raft, then carry out what it caused."""
        node = self.nodes[node_id]
        assert node.alive and node.raft is not None
        result = fn(node.raft)
        self._drain(node)
        return result

    # ---- the runtime of one node ---------------------------------------------------------

    def _tick(self, node: SimNode, incarnation: int) -> None:
        if node.incarnation != incarnation or not node.alive:
            return
        assert node.raft is not None and node.keeper is not None
        node.raft.tick()
        if node.keeper.leading:
            for command in node.keeper.due(self.now_ms / 1000.0):
                try:
                    index, term = node.raft.propose(command)
                except (NotLeader, ProposalDropped):
                    break
                node.pending[index] = (term, lambda _result: None)
        self._after_step(node)
        self.schedule(self.tick_ms, self._tick, node, incarnation)

    def _deliver(self, node: SimNode, wire: bytes) -> None:
        if not node.alive or node.raft is None:
            return
        self.counters["delivered"] += 1
        msg = messages.decode(msgpack.unpackb(wire, raw=False))
        node.raft.step(msg)
        self._after_step(node)

    def _after_step(self, node: SimNode) -> None:
        if self.oracles is not None and node.raft is not None:
            self.oracles.observe(node.id, node.raft)
        self._drain(node)

    def _drain(self, node: SimNode) -> None:
        while node.alive and not node.busy and node.raft is not None and node.raft.has_ready():
            rd = node.raft.ready()
            if self.oracles is not None:
                self.oracles.on_ready(node.id, node.raft, rd)
            if self.disk_ms > 0 and rd.must_persist():
                node.busy = True
                self.schedule(self.disk_ms, self._persisted, node, node.incarnation, rd)
                return
            self._persisted(node, node.incarnation, rd)

    def _persisted(self, node: SimNode, incarnation: int, rd: RaftReady) -> None:
        if node.incarnation != incarnation or not node.alive:
            return
        raft, machine, keeper = node.raft, node.machine, node.keeper
        assert raft is not None and machine is not None and keeper is not None
        node.storage.persist(rd)
        if self.oracles is not None:
            self.oracles.on_persist(node.id, rd)
        for msg in rd.messages:
            self._send(node.id, msg)
        now = self.now_ms / 1000.0
        if rd.soft_state is not None:
            self._emit(node.id, "role", rd.soft_state)
            if rd.soft_state.role is Role.LEADER:
                keeper.become_leader(now, machine.leases())
                self._emit(node.id, "leader", raft.term)
            else:
                keeper.become_follower()
        if rd.snapshot is not None:
            machine = node.machine = StateMachine.restore(rd.snapshot.data)
            for index in [i for i in node.pending if i <= rd.snapshot.meta.index]:
                node.pending.pop(index)[1](None)
        leaders = self.leaders() if self.oracles is not None else []
        for entry in rd.committed_entries:
            if self.oracles is not None:
                self.oracles.on_apply(node.id, raft, entry, leaders)
            result = None
            if entry.kind is EntryKind.NORMAL:
                applied = machine.apply(entry.index, entry.data)
                result = applied.result
                if applied.lease is not None:
                    keeper.observe(now, applied.lease)
            waiting = node.pending.pop(entry.index, None)
            if waiting is not None:
                waiting[1](result if waiting[0] == entry.term else None)
            self._emit(node.id, "apply", (entry, result))
        for read in rd.read_states:
            self._emit(node.id, "read", read)
        raft.advance(rd)
        node.busy = False
        if self.snapshots and raft.snapshot_due():
            raft.compact(raft.applied, machine.snapshot())
        if self.oracles is not None:
            self.oracles.observe(node.id, raft)
        self._drain(node)

    def _send(self, frm: str, msg: messages.RaftMessage) -> None:
        if self.oracles is not None:
            self.oracles.on_send(frm, msg)
        self._emit(frm, "send", msg)
        self.counters["sent"] += 1
        if (frm, msg.to) in self.faults.blocked or self.rng.random() < self.faults.drop:
            self.counters["dropped"] += 1
            return
        target = self.nodes.get(msg.to)
        if target is None:
            return
        wire = msgpack.packb(messages.encode(msg))
        self.counters["bytes"] += len(wire)
        copies = 2 if self.rng.random() < self.faults.duplicate else 1
        for _ in range(copies):
            self.schedule(self.latency_ms(self.rng), self._deliver, target, wire)

    def _emit(self, node: str, event: str, detail: Any) -> None:
        for listener in self.listeners:
            listener(node, event, detail)
