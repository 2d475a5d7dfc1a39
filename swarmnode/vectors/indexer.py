"""The indexer: the one thread that loads, changes and checkpoints the vector index.

It learns what changed from two sources that say the same thing: the node's
change listener (each committed change, as it happens) and the store's change
feed (every change since a position, read back from LMDB). The listener keeps
the index current while the node runs; the feed fills in what happened while
it was not running, starting from the position saved with the last
checkpoint. Either way a change is only a (namespace, key): the indexer reads
the entry as it is now and makes the index agree with it, so applying a change
twice, late, or out of order is harmless. That is what keeps the index true
under puts, overwrites, deletes, TTL expiry, collection and replicated merges
alike, whichever path they came by.

Heavy work (loading files, rebuilding a namespace from LMDB, checkpoints)
happens here, never on the event loop; searches keep running on other threads
under each namespace's read lock, and changes take its write lock one short
batch at a time.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmnode.crdt.entry import Entry
from swarmnode.lazyimport import lazy_module
from swarmnode.metrics import Registry
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.namespaces import SYSTEM_NS, NamespaceDef
from swarmnode.tagged_cache import TaggedCache
from swarmnode.vectors.catalog import Catalog, LabelRecord, SpaceRecord
from swarmnode.vectors.config import VectorConfig
from swarmnode.vectors.filters import posting_keys
from swarmnode.vectors.records import read_record, snapshot_seq
from swarmnode.vectors.shards import ShardFileError
from swarmnode.vectors.space import Space, Wanted

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

log = logging.getLogger("swarmnode.vectors")

FEED_PAGE = 1_000
DRAIN_MAX = 4_096
BUILD_BATCH = 1_024
PROGRESS_EVERY = 5.0
MAX_SLEEP = 1.0
RECHECK = -1  # the seq of a re-check a search asks for: it moves no watermark


def vector_digest(vector: bytes) -> bytes:
    return hashlib.blake2b(vector, digest_size=8).digest()


def indexed_version(store: Store, ns: str, entry: Entry | None, now_ms: int) -> Any:
    """The live register version whose vector represents the entry (what `get` shows), or None.

    An LWW register, or the latest live sibling of an MV register; anything
    not live (deleted, expired, cleared by a namespace delete), of another
    kind, or without a vector has nothing to index.
    """
    if entry is None or not store.live_entry(ns, entry, now_ms):
        return None
    if entry.reg is not None and entry.reg.visible(now_ms):
        version: Any = entry.reg
    elif entry.mv is not None:
        siblings = entry.mv.siblings(now_ms)
        if not siblings:
            return None
        version = siblings[-1][1]
    else:
        return None
    return version if version.vector is not None else None


class Indexer:
    def __init__(
        self,
        store: Store,
        directory: Path,
        cfg: VectorConfig,
        clock: Callable[[], int],
        cache: TaggedCache,
        on_applied: Callable[[int], None],
        *,
        threaded: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Registry | None = None,
    ) -> None:
        """`threaded=False` runs no thread: `start` loads at once and the owner calls `pump`
        (the simulator does, at virtual time); `monotonic` times checkpoints and progress."""
        self.store = store
        self.threaded = threaded
        self._monotonic = monotonic
        self.directory = directory
        self.cfg = cfg
        self.clock = clock
        self.cache = cache
        self._on_applied = on_applied
        self.catalog = Catalog(directory, cfg.catalog_map_size)
        self.spaces: dict[str, Space] = {}
        self._queue: queue.SimpleQueue[tuple[int, str, str] | None] = queue.SimpleQueue()
        self._expiry: list[tuple[int, str, str]] = []
        self._dropped: set[str] = set()
        self.applied_seq = 0
        self.covered_seq = 0
        """Set by the owner as changes commit: every change up to this seq that the index
        needs has been submitted (the others, in namespaces without vectors, never are). The
        indexer moves `applied_seq` up to it once it has applied what was queued before."""
        self.checkpoint_seq = 0
        self._pending = 0
        self._last_change = monotonic()
        self.state = "loading"
        self.ready = threading.Event()
        self.timings: dict[str, float | None] = {"load_s": None, "last_checkpoint_s": None}
        """Seconds the start-up load and the latest checkpoint took (None until done)."""
        self._declare_metrics(metrics if metrics is not None else Registry())
        self._thread = threading.Thread(target=self._run, name="swarmnode-vectors", daemon=True)

    def _declare_metrics(self, m: Registry) -> None:
        # Written by the indexer thread alone (see the thread rule in swarmnode.metrics).
        def counter(key: str, name: str, help: str) -> Any:
            return m.counter(f"swarmnode_vectors_{name}_total", help, stats=("vectors", key))

        self._applied = counter(
            "applied", "keys_applied", "Keys the indexer made the index match the store for."
        )
        self._wrong_dim = counter(
            "wrong_dim",
            "wrong_dimension",
            "Vectors left out of the index for not having the namespace's dimension.",
        )
        self._rebuilds = counter(
            "rebuilds", "rebuilds", "Namespaces whose index was rebuilt from the store."
        )
        self._checkpoints = counter(
            "checkpoints", "checkpoints", "Index checkpoints written (shards and label maps)."
        )
        self._compactions = counter(
            "compactions", "compactions", "Mostly dead shards compacted into the open one."
        )

    # --- other threads' side --------------------------------------------------

    def start(self) -> None:
        if self.threaded:
            self._thread.start()
        else:
            self._start()

    def submit(self, seq: int, ns: str, key: str) -> None:
        self._queue.put((seq, ns, key))

    def stop(self) -> None:
        """Apply what is queued, write a final checkpoint, end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        elif not self.threaded and self.state == "ready":
            self.pump()
            if self._unsaved():
                self._checkpoint()
            self.state = "stopped"
        self.catalog.close()

    def pump(self) -> None:
        """Without a thread: apply what is queued and do what has fallen due, then return."""
        covered = self.covered_seq
        batch: list[tuple[int, str, str]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                batch.append(item)
        if batch:
            self._apply_records(batch)
        self._cover(covered)
        self._expire_due()
        self._compact_step()
        self._maybe_checkpoint()

    # --- the thread -----------------------------------------------------------

    def _run(self) -> None:
        if not self._start():
            return
        try:
            self._loop()
            if self._unsaved():
                self._checkpoint()
            self.state = "stopped"
        except Exception:
            self.state = "failed"
            log.exception("event=vectors_failed")

    def _start(self) -> bool:
        """Load the index; False (state "failed", logged) if it cannot be loaded."""
        try:
            started = self._monotonic()
            self._load()
            self.timings["load_s"] = round(self._monotonic() - started, 3)
            self.state = "ready"
            log.info(
                "event=vectors_ready namespaces=%d vectors=%d seq=%d seconds=%.3f",
                len(self.spaces),
                sum(len(s) for s in self.spaces.values()),
                self.applied_seq,
                self.timings["load_s"],
            )
            self.ready.set()
            self._on_applied(self.applied_seq)
        except Exception:
            self.state = "failed"
            log.exception("event=vectors_failed")
            self.ready.set()
            return False
        return True

    def _loop(self) -> None:
        while True:
            # Read before draining: whatever was submitted below it is in the queue by now.
            covered = self.covered_seq
            batch, stopping, emptied = self._drain()
            if batch:
                self._apply_records(batch)
            if emptied:
                self._cover(covered)
            self._expire_due()
            self._compact_step()
            if stopping:
                return
            self._maybe_checkpoint()

    def _drain(self) -> tuple[list[tuple[int, str, str]], bool, bool]:
        """What is queued (waiting until something is, or until work falls due); whether to
        stop; whether the queue was emptied."""
        batch: list[tuple[int, str, str]] = []
        try:
            item = self._queue.get(timeout=self._sleep())
        except queue.Empty:
            return batch, False, True
        while item is not None:
            batch.append(item)
            if len(batch) >= DRAIN_MAX:
                return batch, False, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False, True
        return batch, True, True

    def _cover(self, covered: int) -> None:
        """Everything the index needs up to `covered` is applied: the index reflects the
        store that far (changes in between were of namespaces without vectors)."""
        if covered > self.applied_seq:
            self._pending += covered - self.applied_seq
            self.applied_seq = covered
            self._last_change = self._monotonic()
            self._on_applied(covered)

    def _sleep(self) -> float:
        wait = MAX_SLEEP
        if self._expiry:
            wait = min(wait, max(0.0, (self._expiry[0][0] - self.clock()) / 1000))
        return wait

    # --- loading ---------------------------------------------------------------

    def _committed_seq(self) -> int:
        with self.store.read() as txn:
            return snapshot_seq(self.store, txn)

    def _load(self) -> None:
        seq, node_id = self.catalog.position()
        store_seq = self._committed_seq()
        oldest = self.store.changes_since(0, 1)
        feed_from = oldest[0][0] if oldest else store_seq + 1
        reason = None
        if seq == 0:
            reason = "no checkpoint"
        elif node_id != self.store.node_id:
            reason = f"checkpoint belongs to store {node_id}"
        elif seq > store_seq:
            reason = f"checkpoint at {seq} is ahead of the store at {store_seq}"
        elif feed_from > seq + 1:
            reason = f"the change feed starts at {feed_from}, after the checkpoint at {seq}"
        if reason is not None:
            self._rebuild_all(reason, store_seq)
        else:
            self._restore(seq)
        self._catch_up()

    def _rebuild_all(self, reason: str, store_seq: int) -> None:
        log.info("event=vectors_rebuild_all reason=%r", reason)
        self.catalog.reset()
        shutil.rmtree(self.directory / "shards", ignore_errors=True)
        self.applied_seq = store_seq
        for ns in self.store.namespace_names():
            definition = self.store.namespace(ns)
            if definition.dim is not None and not definition.deleted:
                self._build(ns, definition)

    def _restore(self, seq: int) -> None:
        self.applied_seq = self.checkpoint_seq = seq
        for ns, record in self.catalog.spaces().items():
            definition = self.store.namespace(ns)
            if not self._matches(definition, record):
                self._dropped.add(ns)
                if definition.dim is not None and not definition.deleted:
                    self._build(ns, definition)
                continue
            try:
                space = Space.restore(
                    ns, record, self.catalog.labels(ns), self._shard_dir(ns), self.cfg
                )
            except ShardFileError as exc:
                log.warning("event=vectors_shard_bad ns=%s error=%r; rebuilding", ns, str(exc))
                self._build(ns, definition)
                continue
            if definition.partitions:
                space.track_partitions()
            self.spaces[ns] = space
            for item in space.by_label.values():
                if item.expires_at is not None:
                    heapq.heappush(self._expiry, (item.expires_at, ns, item.key))
        for ns in self.store.namespace_names():
            definition = self.store.namespace(ns)
            if ns not in self.spaces and definition.dim is not None and not definition.deleted:
                self._build(ns, definition)

    @staticmethod
    def _matches(definition: NamespaceDef, record: SpaceRecord | Space) -> bool:
        return (
            not definition.deleted
            and definition.dim == record.dim
            and definition.metric == record.metric
            and definition.cleared_at == record.cleared_at
        )

    def _catch_up(self) -> None:
        started = last_log = time.monotonic()
        done = 0
        while True:
            records = self.store.changes_since(self.applied_seq, FEED_PAGE)
            if not records:
                break
            self._apply_records(records)
            done += len(records)
            if time.monotonic() - last_log > PROGRESS_EVERY:
                last_log = time.monotonic()
                log.info("event=vectors_catch_up changes=%d seq=%d", done, self.applied_seq)
        if done:
            log.info(
                "event=vectors_caught_up changes=%d seconds=%.3f",
                done,
                time.monotonic() - started,
            )

    def _shard_dir(self, ns: str) -> Path:
        return self.directory / "shards" / ns

    def _build(self, ns: str, definition: NamespaceDef) -> Space:
        """A namespace's space from scratch, from the entries in LMDB, with progress in the log."""
        assert definition.dim is not None
        space = Space(ns, definition.dim, definition.metric, definition.cleared_at, self.cfg)
        if definition.partitions:
            space.track_partitions()
        total = self.store.ns_stats(ns)["entries"]
        space.building = (0, total)
        self.spaces[ns] = space
        self._dropped.add(ns)
        self._forget_cached(ns)
        self._rebuilds.inc()
        started = last_log = time.monotonic()
        done = 0
        now = self.clock()
        batch: list[tuple[str, Wanted | None]] = []
        with self.store.read() as txn:
            for key, entry in self.store.scan(ns, txn):
                want = self._wanted(space, entry, now)
                if want is not None:
                    batch.append((key, want))
                done += 1
                if len(batch) >= BUILD_BATCH:
                    self._apply_built(space, batch)
                    batch = []
                space.building = (done, total)
                if time.monotonic() - last_log > PROGRESS_EVERY:
                    last_log = time.monotonic()
                    log.info("event=vectors_building ns=%s done=%d total=%d", ns, done, total)
        self._apply_built(space, batch)
        space.building = None
        log.info(
            "event=vectors_built ns=%s vectors=%d entries=%d seconds=%.3f",
            ns,
            len(space),
            done,
            time.monotonic() - started,
        )
        return space

    def _apply_built(self, space: Space, batch: list[tuple[str, Wanted | None]]) -> None:
        if not batch:
            return
        with space.lock.write():
            space.apply(batch)
        for key, want in batch:
            if want is not None and want.expires_at is not None:
                heapq.heappush(self._expiry, (want.expires_at, space.ns, key))

    # --- applying changes ------------------------------------------------------

    def _wanted(
        self,
        space: Space,
        entry: Entry | None,
        now_ms: int,
        stored: bytes | None = None,
        stored_seq: int = 0,
    ) -> Wanted | None:
        version = indexed_version(self.store, space.ns, entry, now_ms)
        if version is None:
            return None
        raw = version.vector
        if len(raw) != 4 * space.dim:
            # Only a replica with another definition of the namespace can send
            # this (local puts are checked); it stays out of the index.
            self._wrong_dim.inc()
            return None
        vector = np.frombuffer(raw, dtype="<f4")
        digest = vector_digest(raw)
        postings = posting_keys(version.meta)
        return Wanted(vector, digest, version.expires_at, postings, stored, stored_seq)

    def _apply_records(self, records: list[tuple[int, str, str]]) -> None:
        by_ns: dict[str, dict[str, None]] = {}
        for _, ns, key in records:
            if ns == SYSTEM_NS:
                self._sync_space(key)
            else:
                by_ns.setdefault(ns, {})[key] = None
        for ns, keys in by_ns.items():
            space = self._space_for(ns)
            if space is not None:
                self._apply_keys(space, list(keys))
        top = max(seq for seq, _, _ in records)
        if top > self.applied_seq:
            self.applied_seq = top
            self._pending += len(records)
            self._last_change = self._monotonic()
            self._on_applied(top)

    def _sync_space(self, ns: str) -> None:
        """A namespace definition changed: drop, build or rebuild its space to match."""
        definition = self.store.namespace(ns)
        space = self.spaces.get(ns)
        if space is not None and self._matches(definition, space):
            if definition.partitions and space.buckets is None:
                with space.lock.write():
                    space.track_partitions()
            return
        if space is not None:
            self._drop(ns)
        if definition.dim is not None and not definition.deleted:
            self._build(ns, definition)

    def _drop(self, ns: str) -> None:
        self.spaces.pop(ns, None)
        self._dropped.add(ns)
        self._forget_cached(ns)
        log.info("event=vectors_dropped ns=%s", ns)

    def _forget_cached(self, ns: str) -> None:
        self.cache.discard_prefix(("e", ns))

    def _space_for(self, ns: str) -> Space | None:
        space = self.spaces.get(ns)
        if space is not None:
            return space
        definition = self.store.namespace(ns)
        if definition.dim is None or definition.deleted:
            return None
        return self._build(ns, definition)

    def _apply_keys(self, space: Space, keys: list[str]) -> None:
        now = self.clock()
        wanted: list[tuple[str, Wanted | None]] = []
        with self.store.read() as txn:
            seq = snapshot_seq(self.store, txn)
            for key in keys:
                found = read_record(self.store, txn, space.ns, key, self.cache)
                entry, stored = found if found is not None else (None, None)
                wanted.append((key, self._wanted(space, entry, now, stored, seq)))
        step = self.cfg.apply_batch
        for i in range(0, len(wanted), step):
            with space.lock.write():
                space.apply(wanted[i : i + step])
        for key, want in wanted:
            if want is not None and want.expires_at is not None:
                heapq.heappush(self._expiry, (want.expires_at, space.ns, key))
        self._applied.inc(len(wanted))

    def _expire_due(self) -> None:
        now = self.clock()
        due: dict[str, dict[str, None]] = {}
        while self._expiry and self._expiry[0][0] <= now:
            _, ns, key = heapq.heappop(self._expiry)
            due.setdefault(ns, {})[key] = None
        for ns, keys in due.items():
            space = self.spaces.get(ns)
            if space is not None:
                self._apply_keys(space, [k for k in keys if k in space.by_key])

    def _compact_step(self) -> None:
        for space in list(self.spaces.values()):
            shard = space.compactable()
            if shard is None:
                continue
            for _ in range(8):
                with space.lock.write():
                    gone = space.move_out(shard, self.cfg.apply_batch)
                if gone:
                    self._compactions.inc()
                    log.info("event=vectors_shard_compacted ns=%s shard=%d", space.ns, shard.id)
                    break
            return

    # --- checkpoints -------------------------------------------------------------

    def _unsaved(self) -> bool:
        return bool(self._pending or self._dropped) or any(
            s.fresh or s.changed or any(sh.dirty for sh in s.shards.values())
            for s in self.spaces.values()
        )

    def _maybe_checkpoint(self) -> None:
        if not (self._pending or self._dropped):
            return
        open_size = max(
            (s.shards[s.open_id].count for s in self.spaces.values() if s.open_id in s.shards),
            default=0,
        )
        busy = (
            self._pending >= self.cfg.checkpoint_changes
            and self._pending >= self.cfg.checkpoint_ratio * open_size
        )
        idle = self._monotonic() - self._last_change >= self.cfg.idle_checkpoint
        if busy or idle:
            self._checkpoint()

    def _checkpoint(self) -> None:
        started = self._monotonic()
        manifests: dict[str, SpaceRecord | None] = dict.fromkeys(self._dropped)
        labels: list[tuple[str, int, LabelRecord | None]] = []
        fresh: set[str] = set()
        saved = 0
        for ns, space in self.spaces.items():
            directory = self._shard_dir(ns)
            with space.lock.read():
                for shard in space.shards.values():
                    if shard.dirty or shard.record is None:
                        shard.save(directory)
                        saved += 1
            if space.fresh:
                fresh.add(ns)
                labels.extend((ns, label, rec) for label, rec in space.all_records())
                space.fresh = False
            else:
                labels.extend((ns, label, rec) for label, rec in space.take_changes())
            manifests[ns] = space.manifest()
        self.catalog.commit(self.applied_seq, self.store.node_id, manifests, labels, fresh)
        self._remove_stale_files()
        self._dropped.clear()
        self.checkpoint_seq = self.applied_seq
        self._pending = 0
        trimmed = self.store.trim_changes(self.applied_seq)
        seconds = self._monotonic() - started
        self._checkpoints.inc()
        self.timings["last_checkpoint_s"] = round(seconds, 3)
        log.info(
            "event=vectors_checkpoint seq=%d shards_saved=%d labels=%d trimmed=%d seconds=%.3f",
            self.applied_seq,
            saved,
            len(labels),
            trimmed,
            seconds,
        )

    def _remove_stale_files(self) -> None:
        root = self.directory / "shards"
        if not root.is_dir():
            return
        for ns_dir in root.iterdir():
            space = self.spaces.get(ns_dir.name)
            if space is None:
                shutil.rmtree(ns_dir, ignore_errors=True)
                continue
            keep = {s.record.file for s in space.shards.values() if s.record is not None}
            for f in ns_dir.iterdir():
                if f.name not in keep:
                    f.unlink(missing_ok=True)
