"""Raft's safety oracles on the consensus groups of a simulated cluster's nodes.

Every node the simulator boots runs the production `ConsensusGroup` inside its
`Node`; `RaftWatch` attaches one `RaftOracles` (consensus/oracles.py) to all of
them, so Election Safety, Leader Append-Only, Log Matching, Leader
Completeness, State Machine Safety, durable term and vote, and a commit index
that never goes back are checked at every step of every node, across crashes
and restarts, while the run goes on.

A broken property is recorded (with the virtual time and the node) rather than
raised inside the node's step, where it would surface as one client's error;
the cluster raises it at its next invariant check (`Cluster.check_invariants`,
every virtual second), which ends the run with the violation. Only the first
one is kept: after it the oracles' own view may be inconsistent.
"""

from __future__ import annotations

from collections.abc import Callable

from swarmnode.consensus.messages import RaftMessage
from swarmnode.consensus.oracles import RaftOracles, SafetyViolation
from swarmnode.consensus.raft import Raft
from swarmnode.consensus.ready import RaftReady, Role
from swarmnode.consensus.records import Entry

Leaders = Callable[[], list[tuple[str, Raft]]]


class RaftWatch:
    def __init__(self, leaders: Leaders, now: Callable[[], float]) -> None:
        """`leaders()` lists (node id, Raft) of the live nodes that lead right now."""
        self.oracles = RaftOracles()
        self.violation: str | None = None
        self._leaders = leaders
        self._now = now
        self._started: set[str] = set()

    def observer(self, node_id: str) -> NodeObserver:
        """The observer to attach to `node_id`'s consensus group (one per boot)."""
        return NodeObserver(self, node_id)

    def check(self) -> None:
        """Raise the first safety violation seen, if any."""
        if self.violation is not None:
            raise SafetyViolation(self.violation)

    def _guard(self, node_id: str, check: Callable[[], None]) -> None:
        if self.violation is not None:
            return
        try:
            check()
        except SafetyViolation as exc:
            self.violation = f"at {self._now():.3f}s on {node_id}: {exc}"

    @property
    def steps(self) -> int:
        return self.oracles.steps


class NodeObserver:
    """One node's `RaftObserver`: forwards to the cluster's oracles."""

    def __init__(self, watch: RaftWatch, node_id: str) -> None:
        self.watch = watch
        self.node = node_id

    def started(self, raft: Raft) -> None:
        oracles, node = self.watch.oracles, self.node
        if node in self.watch._started:
            self.watch._guard(node, lambda: oracles.on_restart(node, raft))
        else:
            self.watch._started.add(node)
            self.watch._guard(node, lambda: oracles.on_boot(node, raft))

    def stepped(self, raft: Raft) -> None:
        self.watch._guard(self.node, lambda: self.watch.oracles.observe(self.node, raft))

    def ready(self, raft: Raft, rd: RaftReady) -> None:
        self.watch._guard(self.node, lambda: self.watch.oracles.on_ready(self.node, raft, rd))

    def persisted(self, rd: RaftReady) -> None:
        self.watch._guard(self.node, lambda: self.watch.oracles.on_persist(self.node, rd))

    def sent(self, msg: RaftMessage) -> None:
        self.watch._guard(self.node, lambda: self.watch.oracles.on_send(self.node, msg))

    def applying(self, raft: Raft, entry: Entry) -> None:
        watch = self.watch
        watch._guard(
            self.node,
            lambda: watch.oracles.on_apply(self.node, raft, entry, watch._leaders()),
        )


def is_leader(raft: Raft | None) -> bool:
    return raft is not None and raft.role is Role.LEADER
