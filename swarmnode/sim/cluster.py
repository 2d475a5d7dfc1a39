"""A whole cluster in one process: production nodes on real LMDB, in virtual time.

Each simulated node is what `swarmnode run` runs: the unmodified `Node` with
its `Store` (LMDB in a directory of its own, `sync=False`: the host never
crashes here, only the process does), driven by the same `NodeHost` as the
real runtime, with the service layer (`service/`) on top. Only
the plug-ins differ: a virtual clock, the simulated network, and a committer
that group-commits at virtual time. The event loop is the simulator's
(`SimLoop`), so the client operations' coroutines run on virtual time too.

Faults that belong to a node live here:
- crash: the process dies; its Store is closed, its memory (membership view,
  gossip queues, Merkle trees) is gone; restart reopens the same directory,
  so what was committed survives, and builds a new Node on it.
- clock skew: the node's wall clock (HLC and TTL input) is virtual time plus
  its skew; its monotonic clock (the protocols' timers) is not skewed.
- the consensus group of every node is watched by Raft's safety oracles
  (`raftwatch.py`), checked at every step of every node; a broken property
  is raised at the next invariant check.
- slowness: every event the node handles occupies it for `service_time`
  virtual seconds; what arrives meanwhile waits in line, as on a loaded host.
  (Idle ticks count as events too, so a slow node's run differs between the
  two tick modes; without slow nodes the modes give the same run.)

Everything random draws from generators derived from the run's seed, node ids
included, so a seed replays a run exactly.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from swarmnode.config import Config
from swarmnode.consensus.group import open_group
from swarmnode.consensus.raft import Raft
from swarmnode.consensus.storage import LmdbStorage
from swarmnode.membership.state import MemberState
from swarmnode.metrics import Registry
from swarmnode.node import Node
from swarmnode.replication.merkle import leaf_bits
from swarmnode.runtime.host import NodeHost
from swarmnode.sansio import Address, Message
from swarmnode.service.build import NodeService, assemble, build_service
from swarmnode.service.chain import Service
from swarmnode.sim.committer import SimCommitter
from swarmnode.sim.loop import SimLoop
from swarmnode.sim.network import LinkProfile, Network
from swarmnode.sim.raftwatch import RaftWatch, is_leader
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Change, Op, OpResult
from swarmnode.storage.writer import Committed

EPOCH_MS = 1_767_225_600_000
"""Wall clock at virtual time zero (2026-01-01T00:00:00Z): fixed, so timestamps replay."""


@dataclass
class ClusterConfig:
    """How the simulated cluster is built; the nodes' own knobs are in `Config`."""

    seed: int = 0
    # Nodes the cluster starts with.
    nodes: int = 5
    # Nodes every node names as seeds when it joins (the first ones).
    seeds: int = 3
    # Seconds over which node starts are spread (0: all at once).
    start_spread: float = 0.5
    # The default link; per-link profiles override it.
    link: LinkProfile = field(default_factory=LinkProfile)
    # LMDB map size per node in the simulator (bytes): small, since a thousand
    # nodes share one address space.
    map_size: int = 256 << 20
    # "interval": tick every node every tick_interval, as the real runtime does.
    # "deadline": tick a node only at the grid points where it has work due;
    # the same run, several times faster for idle nodes (see `next_deadline`).
    tick_mode: str = "interval"
    # Virtual seconds between checks of every membership's internal invariants
    # (O(n) each); 0 turns them off, which large clusters want.
    invariants_every: float = 1.0
    # Virtual seconds one commit (an fsync) takes; writes that arrive meanwhile
    # share the next one, as behind a real group commit.
    commit_latency: float = 0.0
    # Give every node its vector index, as `swarmnode run` does (off for clusters of
    # hundreds of nodes that test membership only: each index is an LMDB of its own).
    vectors: bool = True
    # Check Raft's safety properties at every step of every node's consensus group.
    raft_oracles: bool = True


def next_deadline(node: Node) -> float:
    """The first time at which `node.tick` could do anything, idle timer re-arms included.

    `Node.next_deadline()` leaves out membership's periodic timers that fire
    with nothing to do; `tick` still re-arms them, and skipping those wake-ups
    would shift their phase and make deadline mode differ from interval mode.
    """
    periodic = node.membership.periodic_deadline()
    due = node.next_deadline()
    return due if periodic is None else min(due, periodic)


class SimNode:
    """One node's host: its directory, clock, speed and the process when it is up."""

    def __init__(self, index: int, addr: Address, path: Path, node_id: str) -> None:
        self.index = index
        self.addr = addr
        self.path = path
        self.node_id = node_id
        self.skew = 0.0
        self.service_time = 0.0
        self.busy_until = 0.0
        self.backlog: deque[Callable[[Node], Any]] = deque()
        self.generation = 0
        self.phase = 0.0
        self.last_k = -1
        self.wake_k: int | None = None
        self.store: Store | None = None
        self.host: NodeHost | None = None
        self.service: Service | None = None
        self.served: NodeService | None = None
        self.raft_storage: LmdbStorage | None = None
        self.committer: SimCommitter | None = None
        self.crashed_at: float | None = None
        self.booted_at = 0.0

    @property
    def node(self) -> Node | None:
        return self.host.node if self.host is not None else None

    @property
    def up(self) -> bool:
        return self.host is not None


class _SimClock:
    """A simulated host's clocks: virtual time, and wall time with the host's skew."""

    def __init__(self, cluster: Cluster, sn: SimNode) -> None:
        self._cluster = cluster
        self._sn = sn

    def monotonic(self) -> float:
        return self._cluster.now

    def wall_ms(self) -> int:
        return self._cluster.wall_ms(self._sn)


class _SimTransport:
    def __init__(self, network: Network, addr: Address) -> None:
        self._network = network
        self._addr = addr

    def send(self, addr: Address, msgs: list[Message]) -> None:
        self._network.send(self._addr, addr, msgs)


def sim_address(index: int) -> Address:
    return (f"10.0.{index // 250}.{index % 250 + 1}", 7117)


class Cluster:
    def __init__(self, config: ClusterConfig, node_config: Config, workdir: Path) -> None:
        self.config = config
        self.seed = config.seed
        self.node_config = replace(
            node_config,
            store=replace(node_config.store, sync=False, map_size=config.map_size),
            # One thread per simulation: hnswlib inserts in the order the index gets them.
            vectors=replace(node_config.vectors, build_threads=1, catalog_map_size=64 << 20),
        )
        self.workdir = Path(workdir)
        self.loop = SimLoop()
        self.rng = random.Random(f"{self.seed}/cluster")
        self.network = Network(
            self.loop.call_later,
            random.Random(f"{self.seed}/network"),
            config.link,
            max_datagram=self.node_config.transport.max_datagram,
        )
        self.nodes: list[SimNode] = []
        self.seed_addrs: list[Address] = []
        self.listeners: list[Callable[[SimNode, Change], None]] = []
        self._next_invariants = 0.0
        self.raft_watch = (
            RaftWatch(self.raft_leaders, lambda: self.now) if config.raft_oracles else None
        )

    @property
    def now(self) -> float:
        return self.loop.now

    # --- building --------------------------------------------------------------

    def start(self) -> None:
        """Create the configured nodes; their starts are spread over `start_spread`."""
        n = self.config.nodes
        self.seed_addrs = [sim_address(i) for i in range(min(self.config.seeds, n))]
        for i in range(n):
            sn = self._create(i)
            delay = self.config.start_spread * i / max(1, n - 1)
            self.loop.call_later(delay, self._boot, sn)

    def add_node(self) -> SimNode:
        """One more node, joining now through the seeds."""
        sn = self._create(len(self.nodes))
        self._boot(sn)
        return sn

    def _create(self, index: int) -> SimNode:
        node_id = random.Random(f"{self.seed}/node-id/{index}").getrandbits(64).to_bytes(8, "big")
        path = self.workdir / f"n{index:04d}"
        sn = SimNode(index, sim_address(index), path, node_id.hex())
        self.nodes.append(sn)
        return sn

    def _boot(self, sn: SimNode) -> None:
        assert sn.host is None
        sn.generation += 1
        generation = sn.generation
        sn.busy_until = self.now
        sn.crashed_at = None
        sn.booted_at = self.now
        cfg = self.node_config
        # Ids derived from the seed keep every actor name, LWW tie and digest
        # a function of the seed.
        store = Store(
            sn.path,
            cfg.store,
            node_id=sn.node_id,
            leaf_bits=leaf_bits(cfg.antientropy.tree_fanout, cfg.antientropy.tree_depth),
        )

        def deliver(committed: Committed) -> None:
            self._run(sn, generation, lambda host: host.on_committed(committed))

        clock = _SimClock(self, sn)
        rng = random.Random(f"{self.seed}/node/{sn.index}/{sn.generation}")
        group = open_group(
            sn.node_id, cfg, sn.path / "raft", rng, self.now, sync=False, map_size=64 << 20
        )
        sn.raft_storage = group[1] if group is not None else None
        if group is not None and self.raft_watch is not None:
            group[0].attach(self.raft_watch.observer(sn.node_id))
        committer = SimCommitter(
            store,
            self.loop,
            clock.wall_ms,
            deliver,
            latency=self.config.commit_latency,
            raft_storage=sn.raft_storage,
        )
        # A fresh registry per boot, as a restarted process has; checked for the one-writer rule.
        metrics = Registry(check_threads=True)
        node = Node(
            cfg,
            store,
            address=sn.addr,
            rng=rng,
            now=self.now,
            consensus=group[0] if group is not None else None,
            metrics=metrics,
        )
        host = NodeHost(node, committer, _SimTransport(self.network, sn.addr), clock, self.loop)
        sn.store, sn.host, sn.committer = store, host, committer
        if self.config.vectors:
            with self.loop.entered():
                sn.served = assemble(host, cfg, sn.path, inline_vectors=True)
            sn.service = sn.served.service
        else:
            sn.service, _ = build_service(host, snapshots_dir=sn.path / "snapshots")
        host.add_listener(lambda change: self._changed(sn, change))
        self.network.attach(sn.addr, lambda src, msg: self._deliver(sn, generation, src, msg))
        sn.phase = self.now + self.rng.uniform(0, cfg.node.tick_interval)
        sn.last_k = -1
        sn.wake_k = None
        host.start(list(self.seed_addrs))
        self._after(sn)
        if self.config.tick_mode == "interval":
            self._schedule_tick(sn, 0)

    def _changed(self, sn: SimNode, change: Change) -> None:
        for listener in self.listeners:
            listener(sn, change)

    # --- node faults -------------------------------------------------------------

    def crash(self, index: int) -> None:
        """Kill the process: memory is lost, LMDB keeps what was committed."""
        sn = self.nodes[index]
        if sn.host is None:
            return
        self.network.detach(sn.addr)
        assert sn.store is not None and sn.committer is not None
        sn.committer.close()
        sn.host.close()
        if sn.served is not None:
            sn.served.vectors.abandon()
        sn.store.close()
        if sn.raft_storage is not None:
            sn.raft_storage.close()
        sn.store, sn.host, sn.service, sn.committer, sn.served = None, None, None, None, None
        sn.raft_storage = None
        sn.backlog.clear()
        sn.crashed_at = self.now

    def restart(self, index: int) -> None:
        sn = self.nodes[index]
        if sn.host is None:
            self._boot(sn)

    def set_skew(self, index: int, seconds: float) -> None:
        self.nodes[index].skew = seconds

    def set_slow(self, index: int, service_time: float) -> None:
        self.nodes[index].service_time = service_time

    def set_tick_mode(self, mode: str) -> None:
        """Switch between ticking every interval and ticking at deadlines, mid-run."""
        if mode not in ("interval", "deadline"):
            raise ValueError("tick mode must be interval or deadline")
        self.config.tick_mode = mode

    def wall_ms(self, sn: SimNode) -> int:
        return EPOCH_MS + round((self.now + sn.skew) * 1000)

    # --- driving the nodes ---------------------------------------------------------

    def live(self) -> list[SimNode]:
        return [sn for sn in self.nodes if sn.host is not None]

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, end: float) -> None:
        every = self.config.invariants_every
        while True:
            stop = min(end, self._next_invariants) if every > 0 else end
            self.loop.run_until(stop)
            if every > 0 and self.now >= self._next_invariants:
                self._next_invariants = self.now + every
                self.check_invariants()
            if self.now >= end:
                return

    def check_invariants(self) -> None:
        for sn in self.live():
            assert sn.node is not None
            sn.node.membership.assert_invariants()
        if self.raft_watch is not None:
            self.raft_watch.check()

    def call(self, index: int, fn: Callable[[NodeHost], Any]) -> None:
        """Run `fn(host)` on a node as its own event (a client request, say)."""
        sn = self.nodes[index]
        self._run(sn, sn.generation, fn)

    def submit(
        self, index: int, op: Op, on_result: Callable[[OpResult], Any] | None = None
    ) -> None:
        """Propose a write on a node as its own event; `on_result` gets it once durable."""

        def start(host: NodeHost) -> None:
            fut = host.submit(op)
            if on_result is not None:
                fut.add_done_callback(
                    lambda f: None if f.cancelled() or f.exception() else on_result(f.result())
                )

        self.call(index, start)

    # A node's ticks fall on its own grid, phase + k * tick_interval, in both
    # modes: "interval" runs every grid point, as the real runtime's ticker does;
    # "deadline" runs only the grid points where `next_deadline` says work is due,
    # which skips the no-op ticks of idle nodes and changes nothing else.

    def _grid(self, sn: SimNode, k: int) -> float:
        return sn.phase + k * self.node_config.node.tick_interval

    def _schedule_tick(self, sn: SimNode, k: int) -> None:
        sn.wake_k = k
        self.loop.call_at(self._grid(sn, k), self._tick, sn, sn.generation, k)

    def _tick(self, sn: SimNode, generation: int, k: int) -> None:
        if sn.generation != generation or sn.wake_k != k:
            return

        def tick(host: NodeHost) -> None:
            sn.last_k = k
            sn.wake_k = None
            host.tick()
            if self.config.tick_mode == "interval":
                self._schedule_tick(sn, k + 1)

        self._run(sn, generation, tick)

    def _rearm(self, sn: SimNode) -> None:
        """Deadline mode: wake the node at the first grid point at or after its next deadline."""
        assert sn.node is not None
        due = next_deadline(sn.node)
        interval = self.node_config.node.tick_interval
        due = max(due, self.now)
        k = max(sn.last_k + 1, int((due - sn.phase) / interval) - 1)
        while self._grid(sn, k) < due:
            k += 1
        if sn.wake_k is None or k < sn.wake_k:
            self._schedule_tick(sn, k)

    def _deliver(self, sn: SimNode, generation: int, src: Address, msg: Message) -> None:
        self._run(sn, generation, lambda host: host.on_message(src, msg))

    def _run(self, sn: SimNode, generation: int, fn: Callable[[NodeHost], Any]) -> None:
        if sn.host is None or sn.generation != generation:
            return
        if sn.backlog or self.now < sn.busy_until:
            sn.backlog.append(fn)
            if len(sn.backlog) == 1:
                self.loop.call_at(sn.busy_until, self._drain, sn, generation)
            return
        sn.busy_until = self.now + sn.service_time
        fn(sn.host)
        self._after(sn)

    def _drain(self, sn: SimNode, generation: int) -> None:
        """A slow node takes the next event of its backlog, in arrival order."""
        if sn.host is None or sn.generation != generation or not sn.backlog:
            return
        fn = sn.backlog.popleft()
        sn.busy_until = self.now + sn.service_time
        fn(sn.host)
        self._after(sn)
        if sn.backlog:
            self.loop.call_at(sn.busy_until, self._drain, sn, generation)

    def _after(self, sn: SimNode) -> None:
        """After any step of a node (its host has sent what it had): re-arm its wake-up."""
        if sn.host is not None and self.config.tick_mode == "deadline":
            self._rearm(sn)

    # --- what the oracles read --------------------------------------------------------

    def raft_leaders(self) -> list[tuple[str, Raft]]:
        """(node id, Raft) of the live nodes whose consensus group leads right now."""
        out = []
        for sn in self.live():
            group = sn.node.consensus if sn.node is not None else None
            if group is not None and group.raft is not None and is_leader(group.raft):
                out.append((sn.node_id, group.raft))
        return out

    def views(self) -> dict[str, dict[str, MemberState]]:
        """node id -> (member id -> state) as each live node sees it."""
        out = {}
        for sn in self.live():
            assert sn.node is not None
            out[sn.node_id] = {m.node_id: m.state for m in sn.node.membership.members()}
        return out

    def close(self) -> None:
        for sn in self.nodes:
            if sn.host is not None:
                sn.host.close()
            if sn.served is not None:
                sn.served.vectors.abandon()
            if sn.store is not None:
                sn.store.close()
            if sn.raft_storage is not None:
                sn.raft_storage.close()
            sn.store, sn.host, sn.service, sn.committer, sn.served = None, None, None, None, None
            sn.raft_storage = None
