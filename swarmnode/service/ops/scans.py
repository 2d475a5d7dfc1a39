"""Scans over namespaces: list (one namespace, a page at a time) and search (glob or words).

Scans run on a worker thread with their own LMDB read transaction, so a big
namespace never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
from collections.abc import Callable
from typing import Any

from swarmnode.crdt.entry import COUNTER, REGISTER, Entry
from swarmnode.errors import BadRequest
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import Request
from swarmnode.storage.namespaces import reserved
from swarmnode.storage.views import entry_view, summary_view

LIST_REPLY_BUDGET = 8 << 20
"""Bytes of keys and values one list page gathers at most (a page ends early past it)."""


def glob_prefix(pattern: str) -> str:
    """The literal part of a glob before its first wildcard (lets a scan seek)."""
    m = re.search(r"[*?\[]", pattern)
    return pattern[: m.start()] if m else pattern


def value_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return None


class ScanOps:
    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self.store = node.store

    def register(self, service: Service) -> None:
        service.register("list", self.list)
        service.register("search", self.search)

    async def list(self, req: Request) -> Any:
        a = req.args
        prefix = a.get("prefix") or ""
        pattern = a.get("pattern")
        if pattern is not None:
            literal = glob_prefix(pattern)
            if not literal.startswith(prefix) and not prefix.startswith(literal):
                return {"items": [], "cursor": None}
            prefix = max(prefix, literal, key=len)
        return await asyncio.to_thread(
            self._list_scan, a["ns"], prefix, pattern, a["limit"], a.get("cursor"), a["values"]
        )

    def _list_scan(
        self,
        ns: str,
        prefix: str,
        pattern: str | None,
        limit: int,
        cursor: str | None,
        with_values: bool,
    ) -> dict[str, Any]:
        now = self.node.wall_ms()
        items: list[dict[str, Any]] = []
        budget = 0
        last = None
        more = False
        cleared_at = self.store.namespace(ns).cleared_at
        with self.store.read() as txn:
            for key, entry in self.store.scan(ns, txn, prefix=prefix, after=cursor):
                if len(items) >= limit or budget > LIST_REPLY_BUDGET:
                    more = True
                    break
                last = key
                if entry.ts <= cleared_at:
                    continue
                if pattern is not None and not fnmatch.fnmatchcase(key, pattern):
                    continue
                item = summary_view(ns, key, entry, now, with_values)
                if item is not None:
                    items.append(item)
                    budget += len(key) + (len(repr(item.get("value"))) if with_values else 0)
        return {"items": items, "cursor": last if more else None}

    async def search(self, req: Request) -> Any:
        a = req.args
        pattern = a["pattern"]
        if not pattern:
            raise BadRequest("search: pattern must not be empty")
        mode = a["mode"]
        if mode == "auto":
            mode = "glob" if re.search(r"[*?\[]", pattern) else "substring"
        ns = a.get("ns")
        readable = req.notes.get("readable", _everything)
        names = self.store.namespace_names()
        namespaces = [ns] if ns else [n for n in names if not reserved(n) and readable(n)]
        return await asyncio.to_thread(
            self._search_scan, namespaces, pattern, mode, a["in"], a["limit"]
        )

    def _search_scan(
        self, namespaces: list[str], pattern: str, mode: str, where: str, limit: int
    ) -> dict[str, Any]:
        now = self.node.wall_ms()
        needle = pattern.casefold()

        def matches(text: str) -> bool:
            if mode == "glob":
                return fnmatch.fnmatchcase(text, pattern)
            return needle in text.casefold()

        items: list[dict[str, Any]] = []
        scanned = 0
        truncated = False
        with self.store.read() as txn:
            for ns in namespaces:
                cleared_at = self.store.namespace(ns).cleared_at
                for key, entry in self.store.scan(ns, txn):
                    scanned += 1
                    if entry.ts <= cleared_at:
                        continue
                    hit = _search_hit(ns, key, entry, now, matches, where)
                    if hit is None:
                        continue
                    if len(items) >= limit:
                        truncated = True
                        break
                    items.append(hit)
                if truncated:
                    break
        return {"items": items, "scanned": scanned, "truncated": truncated, "mode": mode}


def _everything(ns: str) -> bool:
    return True


def _search_hit(
    ns: str, key: str, entry: Entry, now: int, matches: Callable[[str], bool], where: str
) -> dict[str, Any] | None:
    if not entry.visible(now):
        return None
    match = None
    if where in ("keys", "both") and matches(key):
        match = "key"
    view = None
    if match is None and where in ("values", "both"):
        kinds = entry.live_kinds(now)
        if REGISTER in kinds:
            view = entry_view(ns, key, entry, now)
            text = value_text(view["value"]) if view else None
            if text is not None and matches(text):
                match = "value"
    if match is None:
        return None
    view = view or entry_view(ns, key, entry, now)
    if view is None:
        return None
    hit = {"ns": ns, "key": key, "type": view["type"], "match": match}
    if view["type"] in (REGISTER, COUNTER):
        hit["value"] = view["value"]
        if view.get("meta") is not None:
            hit["meta"] = view["meta"]
    return hit
