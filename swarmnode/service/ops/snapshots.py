"""Housekeeping on demand: compact, persist (a snapshot) and restore (from one)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from swarmnode.crdt.codec import packb
from swarmnode.crdt.entry import COUNTER, REGISTER, SET
from swarmnode.errors import BadRequest, NotFound, SwarmError
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import Request
from swarmnode.storage.lmdb_store import SESSION_RE
from swarmnode.storage.ops import Incr, Op, Put, SAdd, SRem, Sweep
from swarmnode.storage.snapshot import SnapshotReader
from swarmnode.storage.views import entry_view

log = logging.getLogger("swarmnode.api")

RESTORE_CHUNK = 1000
COMPACT_BATCH = 2000


class SnapshotOps:
    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self.store = node.store
        self._locks: dict[str, asyncio.Lock] = {}

    def register(self, service: Service) -> None:
        service.register("compact", self.compact)
        service.register("persist", self.persist)
        service.register("restore", self.restore)

    async def compact(self, req: Request) -> Any:
        ns = req.args.get("ns")
        store = self.store
        before = store.disk_bytes()
        stats_before = {n: store.ns_stats(n) for n in store.data_namespaces()}
        swept = 0
        rounds = 0
        started = time.monotonic()
        while True:
            result = await self.node.commit(None, Sweep(COMPACT_BATCH))
            swept += len(result.changes)
            rounds += 1
            if rounds % 10 == 0:
                log.info("event=compact_progress swept=%d rounds=%d", swept, rounds)
            if not result.more:
                break
        stats_after = {n: store.ns_stats(n) for n in store.data_namespaces()}
        names = [ns] if ns else sorted(set(stats_before) | set(stats_after))
        removed = {}
        for n in names:
            b = stats_before.get(n, {"stored": 0, "bytes": 0})
            f = stats_after.get(n, {"stored": 0, "bytes": 0})
            removed[n] = {"entries": b["stored"] - f["stored"], "bytes": b["bytes"] - f["bytes"]}
        return {
            "swept": swept,
            "removed": removed,
            "entries_removed": sum(r["entries"] for r in removed.values()),
            "disk_bytes_before": before,
            "disk_bytes_after": store.disk_bytes(),
            "seconds": round(time.monotonic() - started, 3),
        }

    async def persist(self, req: Request) -> Any:
        session_id = req.args["session_id"]
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            path = await asyncio.to_thread(self.store.snapshot, session_id, self.node.snapshots_dir)
            size = sum(p.stat().st_size for p in path.iterdir())
        return {"session_id": session_id, "path": str(path), "bytes": size}

    async def restore(self, req: Request) -> Any:
        session_id = req.args["session_id"]
        if not SESSION_RE.match(session_id):
            raise BadRequest("restore: invalid session_id")
        ns = req.args.get("ns")
        path = self.node.snapshots_dir / session_id
        if not path.exists():
            raise NotFound(f"no snapshot {session_id!r} (persist it first)")
        ops = await asyncio.to_thread(self._restore_ops, path, ns)
        counts = {"restored": 0, "unchanged": ops.count(None), "failed": 0}
        errors: list[str] = []
        writes = [op for op in ops if op is not None]
        # Submitted together so they share group commits; chunked to bound memory.
        for start in range(0, len(writes), RESTORE_CHUNK):
            chunk = writes[start : start + RESTORE_CHUNK]
            results = await asyncio.gather(
                *(self.node.commit(None, op) for op in chunk), return_exceptions=True
            )
            for op, result in zip(chunk, results, strict=True):
                if isinstance(result, SwarmError):
                    counts["failed"] += 1
                    if len(errors) < 10:
                        errors.append(f"{op.ns}/{op.key}: {result.message}")
                elif isinstance(result, BaseException):
                    raise result
                else:
                    counts["restored"] += 1
            log.info(
                "event=restore_progress session=%s done=%d of=%d",
                session_id,
                start + len(chunk),
                len(writes),
            )
        return {"session_id": session_id, **counts, "errors": errors}

    def _restore_ops(self, path: Path, ns: str | None) -> list[Op | None]:
        """Writes that make each live snapshot entry live again with its snapshot value.

        They are ordinary writes with fresh timestamps, so they win over what
        happened since the snapshot and replicate like any other write. Keys
        created after the snapshot are left alone.
        """
        now = self.node.wall_ms()
        ops: list[Op | None] = []
        with SnapshotReader(path) as snap, self.store.read() as txn:
            for entry_ns, key, entry in snap.entries_of(ns):
                view = entry_view(entry_ns, key, entry, now, with_vector=True)
                if view is None:
                    continue
                current = self.store.get(entry_ns, key, txn)
                cur_view = (
                    entry_view(entry_ns, key, current, now, with_vector=True) if current else None
                )
                ttl = max(1.0, (view["expires_at"] - now) / 1000) if view.get("expires_at") else 0
                if (
                    cur_view is not None
                    and cur_view["type"] == view["type"]
                    and _same(cur_view["value"], view["value"])
                    and _same(cur_view.get("meta"), view.get("meta"))
                ):
                    ops.append(None)
                elif view["type"] == REGISTER:
                    ops.append(
                        Put(
                            entry_ns,
                            key,
                            view["value"],
                            meta=view.get("meta"),
                            vector=view.get("vector"),
                            ttl=ttl,
                        )
                    )
                elif view["type"] == COUNTER:
                    have = cur_view["value"] if cur_view and cur_view["type"] == COUNTER else 0
                    ops.append(Incr(entry_ns, key, view["value"] - have, ttl))
                else:
                    have = set(cur_view["value"]) if cur_view and cur_view["type"] == SET else set()
                    want = set(view["value"])
                    if want - have:
                        ops.append(SAdd(entry_ns, key, sorted(want - have), ttl))
                    if have - want:
                        ops.append(SRem(entry_ns, key, sorted(have - want)))
        return ops


def _same(a: Any, b: Any) -> bool:
    """Equal as stored (canonical msgpack bytes): NaN equals NaN, 1 is not 1.0 or True."""
    return packb(a) == packb(b)
