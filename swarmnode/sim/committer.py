"""Group commit at virtual time: the simulator's committer.

Like the real writer thread, it takes every batch submitted before its
commit fires into one transaction, and hands the results back as a later
event, never inside the call that submitted them. `latency` is the virtual
time a commit takes (an fsync); batches that arrive meanwhile wait for the
next one, as they do behind a real fsync. A crash drops what was submitted
but not committed, and nothing is acknowledged for it.
"""

from __future__ import annotations

from collections.abc import Callable

from swarmnode.consensus.ready import RaftReady
from swarmnode.consensus.storage import RaftStorage
from swarmnode.sim.loop import EventLoop
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Op
from swarmnode.storage.writer import Committed, split_results


class SimCommitter:
    def __init__(
        self,
        store: Store,
        loop: EventLoop,
        wall_ms: Callable[[], int],
        deliver: Callable[[Committed], None],
        *,
        latency: float = 0.0,
        raft_storage: RaftStorage | None = None,
    ) -> None:
        self.store = store
        self.raft_storage = raft_storage
        self._loop = loop
        self._wall_ms = wall_ms
        self._deliver = deliver
        self.latency = latency
        self._queued: list[tuple[int, list[Op], RaftReady | None]] = []
        self._committing = False
        self._stats = {"batches": 0, "ops": 0, "max_batch": 0}
        self.closed = False

    def submit(self, batch: int, ops: list[Op], raft: RaftReady | None = None) -> None:
        self._queued.append((batch, ops, raft))
        if not self._committing:
            self._committing = True
            self._loop.call_later(self.latency, self._commit)

    def _commit(self) -> None:
        if self.closed:
            return
        taken, self._queued = self._queued, []
        for _, _, raft in taken:
            if raft is not None:
                assert self.raft_storage is not None
                self.raft_storage.persist(raft)
        ops = [op for _, batch_ops, _ in taken for op in batch_ops]
        results = self.store.apply(ops, self._wall_ms())
        self._stats["batches"] += 1
        self._stats["ops"] += len(ops)
        self._stats["max_batch"] = max(self._stats["max_batch"], len(ops))
        self._committing = False
        if self._queued:
            self._committing = True
            self._loop.call_later(self.latency, self._commit)
        self._deliver(split_results(taken, results))

    def close(self) -> None:
        """The process died: nothing queued is committed or acknowledged."""
        self.closed = True
        self._queued.clear()

    def stats(self) -> dict[str, int]:
        return dict(self._stats)
