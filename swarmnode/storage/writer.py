"""Group commit: the batches of a node's Readys, committed by one writer thread.

The node hands each Ready's writes over as a numbered batch. While the writer
is committing, the next batches queue up; it then takes everything waiting (up
to `max_ops` operations) in one LMDB transaction and one fsync. Under load the
transactions grow by themselves, which is what turns fifty clients' writes
into a handful of fsyncs. The results go back per batch, in submission order,
through `deliver`, which the runtime makes hop to its event loop
(`call_soon_threadsafe`), where they become the node's `persisted` steps.

The simulator has its own committer (`sim/committer.py`) with the same
interface, committing at virtual time.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Protocol

from swarmnode.consensus.ready import RaftReady
from swarmnode.consensus.storage import RaftStorage
from swarmnode.errors import InternalError
from swarmnode.metrics import Registry, exponential_buckets
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Op, OpResult

log = logging.getLogger("swarmnode.storage")

Committed = list[tuple[int, list[OpResult]]]
"""(batch id, its results) for each batch one transaction committed, in order."""


class Committer(Protocol):
    def submit(self, batch: int, ops: list[Op], raft: RaftReady | None = None) -> None:
        """Commit `ops` as batch `batch`, after making `raft` (the consensus group's state)
        durable; the results come back through the runtime."""
        ...

    def stats(self) -> dict[str, int]: ...


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        deliver: Callable[[Committed], None],
        *,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        max_ops: int = 2048,
        raft_storage: RaftStorage | None = None,
        metrics: Registry | None = None,
    ) -> None:
        self.store = store
        self.raft_storage = raft_storage
        self._deliver = deliver
        self._wall_ms = wall_ms
        self.max_ops = max_ops
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="swarmnode-writer", daemon=True)
        self._stopped = False
        self._metrics = m = metrics if metrics is not None else Registry()
        # All written by the writer thread alone (see the thread rule in swarmnode.metrics).
        self._batches = m.counter(
            "swarmnode_writer_commits_total",
            "LMDB write transactions the group-commit writer committed.",
            stats=("writer", "batches"),
        )
        self._ops = m.counter(
            "swarmnode_writer_ops_total",
            "Operations committed (client writes, merges, sweeps...).",
            stats=("writer", "ops"),
        )
        self._max_batch = m.gauge(
            "swarmnode_writer_max_commit_ops",
            "Operations in the largest transaction since start.",
            stats=("writer", "max_batch"),
        )
        self._commit_ops = m.histogram(
            "swarmnode_writer_commit_ops",
            "Operations per transaction.",
            buckets=exponential_buckets(1, 2, 12),
        )
        self._commit_seconds = m.histogram(
            "swarmnode_writer_commit_duration_seconds",
            "Seconds to apply and commit (fsync included) one transaction.",
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: int, ops: list[Op], raft: RaftReady | None = None) -> None:
        if self._stopped:
            raise RuntimeError("writer is stopped")
        self._queue.put((batch, ops, raft))

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
            self._thread.join()

    def stats(self) -> dict[str, int]:
        """Transactions (`batches`), operations, and the largest transaction, since start."""
        return self._metrics.snapshot("writer")

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            taken: list[_Batch] = [first]
            n = len(first[1])
            while n < self.max_ops:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                taken.append(item)
                n += len(item[1])
            self._commit(taken)

    def _commit(self, taken: list[_Batch]) -> None:
        started = time.perf_counter()
        persist_raft(self.raft_storage, taken)
        ops = [op for _, batch_ops, _ in taken for op in batch_ops]
        try:
            results = self.store.apply(ops, self._wall_ms())
        except Exception:  # apply reports per-op errors itself; this is a bug
            log.exception("event=batch_failed size=%d", len(ops))
            results = [OpResult(error=InternalError("write batch failed")) for _ in ops]
        self._commit_seconds.observe(time.perf_counter() - started)
        self._commit_ops.observe(len(ops))
        self._batches.inc()
        self._ops.inc(len(ops))
        if len(ops) > self._max_batch.value:
            self._max_batch.set(len(ops))
        self._deliver(split_results(taken, results))


_Batch = tuple[int, list[Op], "RaftReady | None"]


def persist_raft(storage: RaftStorage | None, taken: list[_Batch]) -> None:
    """Make the consensus group's Readies durable, in order, before the batches' writes.

    A failure here cannot be answered like a refused write (Raft may not go on as if its
    state were durable): like etcd, the node stops, SIGTERM to itself, and logs why."""
    for _, _, raft in taken:
        if raft is None:
            continue
        if storage is None:
            raise RuntimeError("a Ready carries consensus state but no Raft storage is open")
        try:
            storage.persist(raft)
        except Exception:
            log.critical("event=raft_persist_failed; stopping the node", exc_info=True)
            os.kill(os.getpid(), signal.SIGTERM)
            raise


def split_results(taken: list[_Batch], results: list[OpResult]) -> Committed:
    """The results of one transaction, handed back per batch."""
    out: Committed = []
    at = 0
    for batch, ops, _ in taken:
        out.append((batch, results[at : at + len(ops)]))
        at += len(ops)
    return out
