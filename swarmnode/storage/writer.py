"""Group commit: one writer thread, one transaction and one fsync per batch.

Operations queue up while the previous batch is being committed; the writer
then takes everything waiting (up to `max_batch`) in one transaction. Under
load the batches grow by themselves, which is what turns fifty clients'
writes into a handful of fsyncs. Results go back to the event loop through
`deliver` (the loop's `call_soon_threadsafe`), so acknowledgements, Merkle
updates and gossip all happen on the loop thread, after the data is durable.

`InlineCommitter` has the same interface and commits at once on the calling
thread: the simulator uses it so that runs stay deterministic.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from swarmnode.errors import InternalError
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Op, OpResult

log = logging.getLogger("swarmnode.storage")

Callback = Callable[[OpResult], None]


class Committer(Protocol):
    def submit(self, op: Op, callback: Callback) -> None: ...

    def stats(self) -> dict[str, int]: ...


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        deliver: Callable[[Callable[[], None]], None],
        *,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        max_batch: int = 2048,
    ) -> None:
        self.store = store
        self._deliver = deliver
        self._wall_ms = wall_ms
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Op, Callback] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="swarmnode-writer", daemon=True)
        self._stats = {"batches": 0, "ops": 0, "max_batch": 0}
        self._stopped = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: Op, callback: Callback) -> None:
        if self._stopped:
            raise RuntimeError("writer is stopped")
        self._queue.put((op, callback))

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
            self._thread.join()

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Op, Callback]]) -> None:
        ops = [op for op, _ in batch]
        try:
            results = self.store.apply(ops, self._wall_ms())
        except Exception:  # apply reports per-op errors itself; this is a bug
            log.exception("event=batch_failed size=%d", len(ops))
            results = [OpResult(error=InternalError("write batch failed")) for _ in ops]
        self._stats["batches"] += 1
        self._stats["ops"] += len(ops)
        self._stats["max_batch"] = max(self._stats["max_batch"], len(ops))
        callbacks = [cb for _, cb in batch]

        def finish() -> None:
            for cb, res in zip(callbacks, results, strict=True):
                try:
                    cb(res)
                except Exception:
                    log.exception("event=callback_failed")

        self._deliver(finish)


class InlineCommitter:
    """Commit each operation immediately on the caller's thread (simulator, tools)."""

    def __init__(self, store: Store, wall_ms: Callable[[], int]) -> None:
        self.store = store
        self._wall_ms = wall_ms
        self._stats = {"batches": 0, "ops": 0, "max_batch": 1}

    def submit(self, op: Op, callback: Callback) -> None:
        result = self.store.apply([op], self._wall_ms())[0]
        self._stats["batches"] += 1
        self._stats["ops"] += 1
        callback(result)

    def stats(self) -> dict[str, int]:
        return dict(self._stats)
