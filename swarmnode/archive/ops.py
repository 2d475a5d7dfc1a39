"""The archive's client operations, the `reads` step, and `compact`'s archive report.

`archive_restore` brings a stale entry back exactly as it was archived (the
engine moves its state back; no new write, nothing replicated), and an expired
copy back as a fresh write of its value, metadata and vector with its old TTL
(counted against the caller's quota like any write).
"""

from __future__ import annotations

import asyncio
from typing import Any

from swarmnode.agents.authorise import summarise_archive
from swarmnode.archive import records as R
from swarmnode.archive.archiver import Archiver
from swarmnode.archive.config import ArchiveConfig
from swarmnode.crdt.entry import COUNTER, REGISTER
from swarmnode.errors import BadRequest, NotFound
from swarmnode.service.chain import Executor, Hooks, Next, Service
from swarmnode.service.ops.base import NodeServices, agent_of
from swarmnode.service.table import OpSpec, Request
from swarmnode.storage.ops import Incr, Op, Put, SAdd
from swarmnode.storage.views import entry_view

READ_OPS = frozenset({"get", "smembers", "vsearch", "search"})


class ArchiveOps:
    def __init__(self, node: NodeServices, archiver: Archiver) -> None:
        self.node = node
        self.archiver = archiver

    def register(self, service: Service) -> None:
        for name in ("archive_list", "archive_get", "archive_restore"):
            service.register(name, getattr(self, name))
        service.register("compact", self._with_archive(service.executors["compact"]))

    def _with_archive(self, compact: Executor) -> Executor:
        async def run(req: Request) -> Any:
            result = await compact(req)
            await self.archiver.run_pass()
            per_ns = await asyncio.to_thread(self.archiver.summary)
            ns = req.args.get("ns")
            if ns is not None:
                per_ns = {n: s for n, s in per_ns.items() if n == ns}
            result["archive"] = summarise_archive(per_ns)
            return result

        return run

    async def archive_list(self, req: Request) -> Any:
        a = req.args
        rows = await asyncio.to_thread(
            self.archiver.rows, a["ns"], a.get("prefix") or "", a.get("cursor")
        )
        page = rows[: a["limit"]]
        more = len(rows) > a["limit"]
        return {
            "items": [r.public(a["ns"]) for r in page],
            "cursor": page[-1].key if more and page else None,
        }

    async def archive_get(self, req: Request) -> Any:
        ns, key = req.args["ns"], req.args["key"]
        row, entry = await asyncio.to_thread(self._read, ns, key)
        at = row.visible_ms if row.visible_ms is not None else self.node.wall_ms()
        view = entry_view(ns, key, entry, at, with_vector=req.args["vector"])
        if view is None:
            raise NotFound(f"{key!r} is archived in {ns!r} but no longer live")
        return {**view, "reason": row.kind, "archived_ms": row.archived_ms}

    def _read(self, ns: str, key: str) -> tuple[R.Archived, Any]:
        with self.node.store.read() as txn:
            row = R.row(txn, self.node.store.db, ns, key)
        if row is None or row.ts <= self.node.store.catalog.namespace(ns).cleared_at:
            raise NotFound(f"{key!r} is not archived in {ns!r}")
        return row, R.state_of(self.archiver.segments, row)

    async def archive_restore(self, req: Request) -> Any:
        a = req.args
        ns = a["ns"]
        if (a.get("key") is None) == (a.get("prefix") is None):
            raise BadRequest("archive_restore: give exactly one of key and prefix")
        if a.get("key") is not None:
            rows = await asyncio.to_thread(self.archiver.rows, ns, a["key"])
            rows = [r for r in rows if r.key == a["key"]]
            if not rows:
                raise NotFound(f"{a['key']!r} is not archived in {ns!r}")
        else:
            rows = await asyncio.to_thread(self.archiver.rows, ns, a["prefix"])
        stale = [r.key for r in rows if r.kind == R.STALE]
        restored = 0
        missing: list[str] = []
        for start in range(0, len(stale), self.archiver.config.batch):
            keys = stale[start : start + self.archiver.config.batch]
            result = await self.node.commit(req, R.Unarchive(ns, keys))
            restored += result.value["restored"]
            missing.extend(result.value["missing"])
        expired = [r for r in rows if r.kind == R.EXPIRED]
        for row in expired:
            for op in self._rewrites(ns, row, agent_of(req)):
                await self.node.commit(req, op)
            await self.node.commit(req, R.ForgetArchived(ns, [row.key]))
            restored += 1
        return {"ns": ns, "restored": restored, "missing": missing}

    def _rewrites(self, ns: str, row: R.Archived, agent: str | None) -> list[Op]:
        """Fresh writes that make an expired copy live again, with the TTL it had."""
        entry = R.state_of(self.archiver.segments, row)
        view = entry_view(ns, row.key, entry, row.visible_ms or 0, with_vector=True)
        if view is None:
            return []
        ttl = None
        if view.get("expires_at"):
            ttl = max(1.0, (view["expires_at"] - view["updated_ms"]) / 1000)
        if view["type"] == REGISTER:
            return [
                Put(
                    ns,
                    row.key,
                    view["value"],
                    meta=view.get("meta"),
                    vector=view.get("vector"),
                    ttl=ttl,
                    agent=agent,
                )
            ]
        if view["type"] == COUNTER:
            return [Incr(ns, row.key, view["value"], ttl, agent=agent)]
        return [SAdd(ns, row.key, view["value"], ttl, agent=agent)]


class Reads:
    """The `reads` step: tells the archiver which entries were read (namespaces with
    `archive_after` only), so an entry in use is never archived."""

    name = "reads"
    ops = READ_OPS

    def __init__(self, node: NodeServices, archiver: Archiver) -> None:
        self.node = node
        self.archiver = archiver

    async def __call__(self, req: Request, nxt: Next) -> Any:
        return self.noted(req, await nxt(req))

    def hooks(self, spec: OpSpec) -> Hooks:
        """Only a note after the call: inline."""
        return Hooks(leave=self.noted)

    def noted(self, req: Request, result: Any) -> Any:
        """`result`, once the entries it read are noted (in namespaces with
        `archive_after`)."""
        if isinstance(result, dict):
            namespace = self.node.store.catalog.namespace
            if req.op in ("get", "smembers"):
                ns = result["ns"]
                if namespace(ns).archive_after:
                    self.archiver.note_read(ns, result["key"])
                return result
            if req.op == "vsearch":
                hits = [(result["ns"], item["key"]) for item in result.get("items", ())]
            else:
                hits = [(item["ns"], item["key"]) for item in result.get("items", ())]
            for ns, key in hits:
                if namespace(ns).archive_after:
                    self.archiver.note_read(ns, key)
        return result


def attach_archive(node: NodeServices, service: Service, config: ArchiveConfig) -> Archiver:
    """The archiver, its operations and the `reads` step (just before execute)."""
    archiver = Archiver(node, config)
    ArchiveOps(node, archiver).register(service)
    service.use(Reads(node, archiver))
    return archiver
