"""The archiver: a background pass that moves stale entries into compressed segments.

Every `[archive] interval` it
1. records what was read since the last pass (`NoteReads`), so "neither written
   nor read for `archive_after`" survives a restart;
2. compresses the copies of expired entries waiting in the inbox (`FileExpired`);
3. for each namespace with `archive_after`, finds live entries last written
   and last read here before the cutoff, compresses their whole states into
   segment frames (fsynced), then asks the engine to move them (`ArchiveStale`),
   which it does only for entries still unchanged since they were read;
4. deletes segments no archived entry points into any more.

Archiving is a local operation, never replicated: it changes neither an
entry's state nor its Merkle digest, so no peer sees a difference
(records.py). Reading, compressing and writing segments run on worker
threads; the engine only moves records, in batches of `[archive] batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from swarmnode.archive import records as R
from swarmnode.archive.config import ArchiveConfig
from swarmnode.archive.segments import Pointer, Segments
from swarmnode.crdt.codec import decode_entry, encode_entry
from swarmnode.crdt.hlc import wall_ms
from swarmnode.service.ops.base import NodeServices
from swarmnode.storage import layout as L
from swarmnode.storage.entries import ALL, load

log = logging.getLogger("swarmnode.archive")

MAX_PENDING_READS = 100_000
"""Reads remembered between passes; past it they are written at once."""


class Archiver:
    def __init__(self, node: NodeServices, config: ArchiveConfig) -> None:
        self.node = node
        self.store = node.store
        self.config = config
        self.segments: Segments = R.segments_of(self.store.engine)
        self.segments.level = config.level
        self.segments.segment_bytes = config.segment_bytes
        self._reads: dict[tuple[str, str], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Lock()
        self.passes = 0
        self.archived_total = 0

    # --- reads -----------------------------------------------------------------------

    def note_read(self, ns: str, key: str) -> None:
        self._reads[ns, key] = self.node.wall_ms()
        if len(self._reads) >= MAX_PENDING_READS and self._task is not None:
            asyncio.get_running_loop().create_task(self._flush_reads())

    async def _flush_reads(self) -> None:
        if not self._reads:
            return
        reads = [(ns, key, ms) for (ns, key), ms in self._reads.items()]
        self._reads = {}
        await self.node.commit(None, R.NoteReads(reads, []))

    # --- running ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=archive_pass_failed")

    async def run_pass(self) -> dict[str, int]:
        """One pass now (also what `compact` runs); how many entries it archived."""
        async with self._running:
            await self._flush_reads()
            filed = await self._file_expired()
            moved = 0
            catalog = self.store.catalog
            for ns, definition in sorted(catalog.definitions.items()):
                if definition.archive_after and not definition.deleted:
                    moved += await self._archive_namespace(ns, definition.archive_after)
            referenced = await asyncio.to_thread(self._referenced_segments)
            gone = await asyncio.to_thread(self.segments.drop_unreferenced, referenced)
            self.passes += 1
            self.archived_total += moved
            if moved or filed or gone:
                log.info(
                    "event=archive_pass archived=%d expired_copies=%d segments_deleted=%d",
                    moved,
                    filed,
                    len(gone),
                )
            return {"archived": moved, "expired_copies": filed}

    async def _file_expired(self) -> int:
        filed = 0
        while True:
            rows = await asyncio.to_thread(
                R.inbox, self.store.env, self.store.db, self.config.batch
            )
            if not rows:
                return filed
            states = [state for _, (_, _, state, _) in rows]
            placed = await asyncio.to_thread(self._compress, states)
            items = [
                (k, p, raw, stored) for (k, _), (p, raw, stored) in zip(rows, placed, strict=True)
            ]
            result = await self.node.commit(None, R.FileExpired(items))
            filed += result.value["filed"]

    async def _archive_namespace(self, ns: str, after_s: float) -> int:
        moved = 0
        start = b""
        while True:
            cutoff = self.node.wall_ms() - int(after_s * 1000)
            found, start = await asyncio.to_thread(self._candidates, ns, cutoff, start)
            if found:
                placed = await asyncio.to_thread(self._compress, [s for _, _, s in found])
                items = [
                    R.StaleItem(key, digest, p, raw, stored)
                    for (key, digest, _), (p, raw, stored) in zip(found, placed, strict=True)
                ]
                result = await self.node.commit(None, R.ArchiveStale(ns, items))
                moved += result.value["archived"]
                log.info("event=archive_progress ns=%s archived=%d", ns, moved)
            if not start:
                return moved

    def _candidates(
        self, ns: str, cutoff_ms: int, start: bytes
    ) -> tuple[list[tuple[str, bytes, bytes]], bytes]:
        """Up to `batch` stale live entries of `ns` from `start`: (key, digest, state), and
        where the next call starts (b"" when the namespace is done)."""
        store = self.store
        now = self.node.wall_ms()
        cleared_at = store.catalog.namespace(ns).cleared_at
        prefix = L.ns_prefix(ns)
        found: list[tuple[str, bytes, bytes]] = []
        with store.read() as txn, txn.cursor(db=store.db["entries"]) as cur:
            if not cur.set_range(start or prefix):
                return found, b""
            for k, v in cur:
                if not k.startswith(prefix):
                    return found, b""
                if len(found) >= self.config.batch:
                    return found, bytes(k)
                rec = L.unpack_record(v)
                entry = decode_entry(rec.header)
                if wall_ms(entry.ts) >= cutoff_ms or entry.ts <= cleared_at:
                    continue
                ekey = bytes(k)
                if R.last_read(txn, store.db, ekey) >= cutoff_ms:
                    continue
                loaded = load(txn, store.db, ekey, ALL, bytes(v))
                if loaded is None or not loaded.entry.visible(now):
                    continue
                key = L.names_of(ekey, rec)[1]
                found.append((key, rec.digest, encode_entry(loaded.entry)))
        return found, b""

    def _compress(self, states: list[bytes]) -> list[tuple[Pointer, int, int]]:
        """Write states into frames of about `frame_bytes`: (pointer, raw, stored share)."""
        out: list[tuple[Pointer, int, int]] = []
        chunk: list[bytes] = []
        size = 0
        for state in [*states, None]:
            if state is not None:
                chunk.append(state)
                size += len(state)
            if chunk and (state is None or size >= self.config.frame_bytes):
                pointers, frame = self.segments.append(chunk)
                for p, raw in zip(pointers, chunk, strict=True):
                    out.append((p, len(raw), max(1, frame * len(raw) // size)))
                chunk, size = [], 0
        return out

    def _referenced_segments(self) -> set[int]:
        found = set()
        with self.store.read() as txn, txn.cursor(db=self.store.db["archived"]) as cur:
            for _, v in cur:
                found.add(R.Archived.unpack(bytes(v)).pointer.segment)
        return found

    # --- what is archived ------------------------------------------------------------

    def rows(self, ns: str, prefix: str = "", after: str | None = None) -> list[R.Archived]:
        """Archived entries of `ns` in key order (all of them; callers page)."""
        store = self.store
        bound = L.scan_prefix(ns, prefix)
        start = L.entry_key(ns, after) + b"\x00" if after is not None else bound
        cleared_at = store.catalog.namespace(ns).cleared_at
        out = []
        with store.read() as txn, txn.cursor(db=store.db["archived"]) as cur:
            if cur.set_range(start):
                for k, v in cur:
                    if not k.startswith(bound):
                        break
                    row = R.Archived.unpack(bytes(v))
                    if row.key.startswith(prefix) and row.ts > cleared_at:
                        out.append(row)
        return out

    def summary(self) -> dict[str, dict[str, int]]:
        """Per namespace: archived entries, their bytes, and their compressed bytes."""
        per_ns: dict[str, dict[str, int]] = {}
        with self.store.read() as txn, txn.cursor(db=self.store.db["archived"]) as cur:
            for k, v in cur:
                ns = bytes(k).partition(L.SEP)[0].decode()
                row = R.Archived.unpack(bytes(v))
                s = per_ns.setdefault(ns, {"entries": 0, "bytes": 0, "compressed_bytes": 0})
                s["entries"] += 1
                s["bytes"] += row.raw_bytes
                s["compressed_bytes"] += row.stored_bytes
        return per_ns
