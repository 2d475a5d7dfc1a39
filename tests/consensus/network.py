"""A step-by-step network of Raft nodes for scripted tests (etcd-io/raft's `network`).

Messages are delivered in order, instantly, until none is left, unless a test
cuts or drops them; every node goes through the full Ready contract (persist
to its storage, then send, then apply, then advance). Nothing is timed: time
passes only when a test calls `tick`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace

from swarmnode.consensus import messages
from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.messages import RaftMessage
from swarmnode.consensus.raft import Raft
from swarmnode.consensus.ready import RaftReady, ReadState
from swarmnode.consensus.records import Entry, EntryKind, HardState, Snapshot
from swarmnode.consensus.storage import MemoryStorage, RaftStorage, bootstrap

CONFIG = RaftConfig(
    election_ticks_min=10,
    election_ticks_max=20,
    heartbeat_ticks=1,
    pre_vote=False,
    check_quorum=False,
)


def config(**changes: object) -> RaftConfig:
    return replace(CONFIG, **changes)


class Network:
    def __init__(
        self,
        ids: Iterable[str],
        cfg: RaftConfig = CONFIG,
        *,
        voters: Iterable[str] | None = None,
        seed: int = 0,
        storages: dict[str, RaftStorage] | None = None,
    ) -> None:
        self.ids = list(ids)
        self.cfg = cfg
        self.seed = seed
        self.storages: dict[str, RaftStorage] = dict(storages or {})
        first = sorted(voters) if voters is not None else sorted(self.ids)
        for node in self.ids:
            if node not in self.storages:
                self.storages[node] = MemoryStorage()
                if node in first:
                    bootstrap(self.storages[node], first)
        self.nodes: dict[str, Raft] = {}
        for node in self.ids:
            self.start(node)
        self.cut_links: set[tuple[str, str]] = set()
        self.drop_if: Callable[[RaftMessage], bool] = lambda _msg: False
        self.applied: dict[str, list[Entry]] = {node: [] for node in self.ids}
        self.reads: dict[str, list[ReadState]] = {node: [] for node in self.ids}
        self.installed: dict[str, list[Snapshot]] = {node: [] for node in self.ids}
        self.sent: list[RaftMessage] = []

    def start(self, node: str) -> Raft:
        """Build (or rebuild, after a crash) a node from its storage."""
        rng = random.Random(f"{self.seed}:{node}:{len(getattr(self, 'nodes', {}))}")
        self.nodes[node] = Raft(node, self.cfg, self.storages[node], rng)
        return self.nodes[node]

    def cut(self, a: str, b: str) -> None:
        self.cut_links |= {(a, b), (b, a)}

    def isolate(self, node: str) -> None:
        for other in self.ids:
            if other != node:
                self.cut(node, other)

    def recover(self) -> None:
        self.cut_links.clear()
        self.drop_if = lambda _msg: False

    def process(self, node: str) -> list[RaftMessage]:
        """Carry out every Ready of `node`; returns the messages it sends."""
        raft = self.nodes[node]
        out: list[RaftMessage] = []
        while raft.has_ready():
            rd = raft.ready()
            self.storages[node].persist(rd)
            out.extend(rd.messages)
            self.applied[node].extend(rd.committed_entries)
            self.reads[node].extend(rd.read_states)
            if rd.snapshot is not None:
                self.installed[node].append(rd.snapshot)
            raft.advance(rd)
        return out

    def deliver(self, msgs: list[RaftMessage]) -> None:
        """Deliver messages (and everything they cause) until the network is quiet."""
        queue = list(msgs)
        for node in self.ids:
            queue.extend(self.process(node))
        while queue:
            msg = queue.pop(0)
            self.sent.append(msg)
            if (msg.frm, msg.to) in self.cut_links or self.drop_if(msg):
                continue
            if msg.to not in self.nodes:
                continue
            wire = messages.encode(msg)
            self.nodes[msg.to].step(messages.decode(wire))
            queue.extend(self.process(msg.to))

    def stabilize(self) -> None:
        self.deliver([])

    def tick(self, node: str, times: int = 1) -> None:
        for _ in range(times):
            self.nodes[node].tick()
        self.stabilize()

    def campaign(self, node: str) -> None:
        self.nodes[node].campaign()
        self.stabilize()

    def propose(self, node: str, data: bytes) -> tuple[int, int]:
        index_term = self.nodes[node].propose(data)
        self.stabilize()
        return index_term

    def log_terms(self, node: str) -> list[int]:
        log = self.nodes[node].log
        return [e.term for e in log.entries]


def storage_with_log(voters: list[str], terms: list[int], term: int | None = None) -> MemoryStorage:
    """A storage whose log holds the bootstrap entry then one entry per given term (index 2
    on), with hard state at `term` (default: the last entry's term) and commit 1."""
    storage = MemoryStorage()
    bootstrap(storage, voters)
    entries = [
        Entry(i, t, EntryKind.NORMAL, f"e{i}t{t}".encode()) for i, t in enumerate(terms, start=2)
    ]
    last_term = terms[-1] if terms else 1
    storage.persist(RaftReady(hard_state=HardState(term or last_term, None, 1), entries=entries))
    return storage
