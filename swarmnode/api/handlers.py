"""The client operations: arguments checked, then carried out by the node.

This is the `dispatch` the API server calls. Each operation validates its
named arguments (unknown or mistyped ones are a `bad_request`, never ignored),
then either reads the store directly or hands a write to the node and waits
for its durable commit. Scans (list, search, compact's report) run on a worker
thread with their own LMDB read transaction so a big namespace never stalls
the event loop.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from swarmnode import __version__
from swarmnode.api.server import RequestContext
from swarmnode.crdt.entry import COUNTER, REGISTER, SET, Entry
from swarmnode.errors import BadRequest, NotFound, SwarmError, TooLarge, Unavailable
from swarmnode.node import Node, SyncReport
from swarmnode.storage.lmdb_store import SESSION_RE
from swarmnode.storage.namespaces import SYSTEM_NS, check_ns_name
from swarmnode.storage.ops import (
    Change,
    DefineNs,
    Delete,
    DeleteNs,
    Incr,
    Op,
    OpResult,
    Put,
    SAdd,
    SRem,
    Sweep,
)
from swarmnode.storage.snapshot import SnapshotReader
from swarmnode.storage.views import entry_view, summary_view

log = logging.getLogger("swarmnode.api")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
EAGER_OPS = frozenset(
    {
        "ping", "get", "put", "delete", "list", "search", "incr", "sadd", "srem", "smembers",
        "ns_init", "ns_stats", "ns_list", "members", "stats", "vsearch", "analytics",
    }
)  # fmt: skip
"""Ops the API server may start inside its read loop (`ApiServer` eager ops): the quick,
frequent ones, whose handlers (including the vector layer's `put` and `vsearch`) do not
enter `asyncio.timeout()`, use the current task or set context variables. `sync`, whose
anti-entropy streams do, and the long `compact`, `persist` and `restore` run as tasks."""
MAX_LIMIT = 10_000
LIST_REPLY_BUDGET = 8 << 20
WATCH_QUEUE = 10_000
RESTORE_CHUNK = 1000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Args:
    """Named arguments of one request, checked as they are read."""

    def __init__(self, op: str, args: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise BadRequest(f"{op}: unknown argument(s) {', '.join(unknown)}")
        self.op = op
        self.args = args

    def str(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        v = self.args.get(name)
        if v is None:
            if required:
                raise BadRequest(f"{self.op}: missing argument {name!r}")
            return default
        if not isinstance(v, str):
            raise BadRequest(f"{self.op}: {name!r} must be a string")
        return v

    def int(self, name: str, *, default: int, lo: int, hi: int) -> int:
        v = self.args.get(name)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise BadRequest(f"{self.op}: {name!r} must be an integer")
        if not lo <= v <= hi:
            raise BadRequest(f"{self.op}: {name!r} must be between {lo} and {hi}")
        return v

    def bool(self, name: str, default: bool = False) -> bool:
        v = self.args.get(name)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise BadRequest(f"{self.op}: {name!r} must be true or false")
        return v

    def ns(self, *, required: bool = True) -> str | None:
        name = self.str("ns", required=required)
        return check_ns_name(name) if name is not None else None

    def key(self) -> str:
        return self.str("key", required=True)  # type: ignore[return-value]

    def raw(self, name: str) -> Any:
        return self.args.get(name)


def _glob_prefix(pattern: str) -> str:
    """The literal part of a glob before its first wildcard (lets a scan seek)."""
    m = re.search(r"[*?\[]", pattern)
    return pattern[: m.start()] if m else pattern


def _value_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return None


class Operations:
    """Every client operation, bound to one node."""

    def __init__(
        self,
        node: Node,
        *,
        snapshots_dir: Path,
        extra_stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.node = node
        self.store = node.store
        self.snapshots_dir = snapshots_dir
        self.extra_stats = extra_stats or (lambda: {})
        self._snapshot_locks: dict[str, asyncio.Lock] = {}
        self.handlers: dict[str, Handler] = {
            "ping": self.ping,
            "put": self.put,
            "get": self.get,
            "delete": self.delete,
            "list": self.list,
            "search": self.search,
            "incr": self.incr,
            "sadd": self.sadd,
            "srem": self.srem,
            "smembers": self.smembers,
            "ns_init": self.ns_init,
            "ns_delete": self.ns_delete,
            "ns_stats": self.ns_stats,
            "ns_list": self.ns_list,
            "members": self.members,
            "sync": self.sync,
            "compact": self.compact,
            "persist": self.persist,
            "restore": self.restore,
            "stats": self.stats,
        }
        self.streams: dict[str, Callable[[dict[str, Any]], Awaitable[AsyncIterator[Any]]]] = {
            "watch": self.watch,
        }

    def register(self, op: str, handler: Handler) -> None:
        """Add an operation (the vector and consensus layers register theirs)."""
        self.handlers[op] = handler

    async def dispatch(self, op: str, args: dict[str, Any], ctx: RequestContext) -> Any:
        handler = self.handlers.get(op)
        if handler is not None:
            return await handler(args)
        stream = self.streams.get(op)
        if stream is not None:
            return await stream(args)
        known = ", ".join(sorted([*self.handlers, *self.streams]))
        raise BadRequest(f"unknown operation {op!r}; known: {known}")

    # --- plumbing ------------------------------------------------------------

    async def commit(self, op: Op) -> OpResult:
        """Hand a write to the node and wait until it is durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[OpResult] = loop.create_future()

        def done(result: OpResult) -> None:
            if not fut.done():
                fut.set_result(result)

        self.node.write(op, done)
        result = await fut
        if result.error is not None:
            raise result.error
        return result

    # --- operations ----------------------------------------------------------

    async def ping(self, args: dict[str, Any]) -> Any:
        Args("ping", args, set())
        return {
            "pong": True,
            "node_id": self.node.node_id,
            "version": __version__,
            "time_ms": wall_ms(),
            "address": f"{self.node.address[0]}:{self.node.address[1]}",
        }

    async def put(self, args: dict[str, Any]) -> Any:
        a = Args("put", args, {"ns", "key", "value", "ttl", "meta", "vector", "if_absent"})
        ns, key = a.ns(), a.key()
        if "value" not in args:
            raise BadRequest("put: missing argument 'value'")
        op = Put(
            ns,
            key,
            args["value"],
            meta=a.raw("meta"),
            vector=a.raw("vector"),
            ttl=a.raw("ttl"),
            if_absent=a.bool("if_absent"),
        )
        result = await self.commit(op)
        return {"ns": ns, "key": key, **result.value}

    async def get(self, args: dict[str, Any]) -> Any:
        a = Args("get", args, {"ns", "key", "vector"})
        ns, key = a.ns(), a.key()
        now = wall_ms()
        with self.store.read() as txn:
            entry = self.store.get_header(ns, key, txn)
        if entry is not None and entry.orset is not None:
            # A set is read whole; a big one must not stall the event loop.
            # Anything else is whole already in its header.
            entry = await asyncio.to_thread(self.store.get, ns, key)
        view = None
        if entry is not None and entry.ts > self.store.namespace(ns).cleared_at:
            view = entry_view(ns, key, entry, now, with_vector=a.bool("vector"))
        if view is None:
            raise NotFound(f"{key!r} not found in {ns!r}")
        return view

    async def delete(self, args: dict[str, Any]) -> Any:
        a = Args("delete", args, {"ns", "key"})
        ns, key = a.ns(), a.key()
        result = await self.commit(Delete(ns, key))
        return {"ns": ns, "key": key, **result.value}

    async def incr(self, args: dict[str, Any]) -> Any:
        a = Args("incr", args, {"ns", "key", "by", "ttl"})
        ns, key = a.ns(), a.key()
        by = args.get("by", 1)
        result = await self.commit(Incr(ns, key, by, a.raw("ttl")))
        return {"ns": ns, "key": key, **result.value}

    async def sadd(self, args: dict[str, Any]) -> Any:
        a = Args("sadd", args, {"ns", "key", "members", "ttl"})
        ns, key = a.ns(), a.key()
        result = await self.commit(SAdd(ns, key, a.raw("members"), a.raw("ttl")))
        return {"ns": ns, "key": key, **result.value}

    async def srem(self, args: dict[str, Any]) -> Any:
        a = Args("srem", args, {"ns", "key", "members"})
        ns, key = a.ns(), a.key()
        result = await self.commit(SRem(ns, key, a.raw("members")))
        return {"ns": ns, "key": key, **result.value}

    async def smembers(self, args: dict[str, Any]) -> Any:
        a = Args("smembers", args, {"ns", "key"})
        ns, key = a.ns(), a.key()
        now = wall_ms()
        entry = await asyncio.to_thread(self.store.get, ns, key)
        if entry is None or not self.store.live_entry(ns, entry, now):
            raise NotFound(f"{key!r} not found in {ns!r}")
        if SET not in entry.live_kinds(now):
            raise BadRequest(
                f"{key!r} is a {entry.live_kinds(now)[0]}, not a set", code="wrong_type"
            )
        return {"ns": ns, "key": key, "members": entry.orset.members()}

    async def list(self, args: dict[str, Any]) -> Any:
        a = Args("list", args, {"ns", "prefix", "pattern", "limit", "cursor", "values"})
        ns = a.ns()
        prefix = a.str("prefix", default="") or ""
        pattern = a.str("pattern")
        limit = a.int("limit", default=100, lo=1, hi=MAX_LIMIT)
        cursor = a.str("cursor")
        with_values = a.bool("values")
        if pattern is not None:
            glob_prefix = _glob_prefix(pattern)
            if not glob_prefix.startswith(prefix) and not prefix.startswith(glob_prefix):
                return {"items": [], "cursor": None}
            prefix = max(prefix, glob_prefix, key=len)
        return await asyncio.to_thread(
            self._list_scan, ns, prefix, pattern, limit, cursor, with_values
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
        now = wall_ms()
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

    async def search(self, args: dict[str, Any]) -> Any:
        a = Args("search", args, {"pattern", "ns", "mode", "limit", "in"})
        pattern = a.str("pattern", required=True) or ""
        if not pattern:
            raise BadRequest("search: pattern must not be empty")
        ns = a.ns(required=False)
        mode = a.str("mode", default="auto")
        if mode not in ("auto", "glob", "substring"):
            raise BadRequest("search: mode must be auto, glob or substring")
        if mode == "auto":
            mode = "glob" if re.search(r"[*?\[]", pattern) else "substring"
        where = a.str("in", default="both")
        if where not in ("keys", "values", "both"):
            raise BadRequest("search: in must be keys, values or both")
        limit = a.int("limit", default=100, lo=1, hi=MAX_LIMIT)
        namespaces = [ns] if ns else [n for n in self.store.namespace_names() if n != SYSTEM_NS]
        return await asyncio.to_thread(self._search_scan, namespaces, pattern, mode, where, limit)

    def _search_scan(
        self, namespaces: list[str], pattern: str, mode: str, where: str, limit: int
    ) -> dict[str, Any]:
        now = wall_ms()
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
                    hit = self._search_hit(ns, key, entry, now, matches, where)
                    if hit is None:
                        continue
                    if len(items) >= limit:
                        truncated = True
                        break
                    items.append(hit)
                if truncated:
                    break
        return {"items": items, "scanned": scanned, "truncated": truncated, "mode": mode}

    def _search_hit(
        self, ns: str, key: str, entry: Entry, now: int, matches: Callable[[str], bool], where: str
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
                text = _value_text(view["value"]) if view else None
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

    async def ns_init(self, args: dict[str, Any]) -> Any:
        a = Args("ns_init", args, {"ns", "ttl", "policy", "dim", "metric", "embedder"})
        ns = a.ns()
        params = {k: v for k, v in args.items() if k != "ns"}
        result = await self.commit(DefineNs(ns, params))
        return result.value

    async def ns_delete(self, args: dict[str, Any]) -> Any:
        a = Args("ns_delete", args, {"ns"})
        result = await self.commit(DeleteNs(a.ns()))
        return result.value

    def _ns_info(self, ns: str) -> dict[str, Any]:
        return {**self.store.namespace(ns).public(), **self.store.ns_stats(ns)}

    async def ns_stats(self, args: dict[str, Any]) -> Any:
        a = Args("ns_stats", args, {"ns"})
        ns = a.ns(required=False)
        if ns is not None:
            return self._ns_info(ns)
        return {"namespaces": {n: self._ns_info(n) for n in self.store.namespace_names()}}

    async def ns_list(self, args: dict[str, Any]) -> Any:
        Args("ns_list", args, set())
        return {"namespaces": [self._ns_info(n) for n in self.store.namespace_names()]}

    async def members(self, args: dict[str, Any]) -> Any:
        Args("members", args, set())
        now = self.node.now
        out = []
        for m in self.node.membership.members():
            out.append(
                {
                    "node_id": m.node_id,
                    "address": f"{m.addr[0]}:{m.addr[1]}",
                    "state": m.state.label,
                    "incarnation": m.incarnation,
                    "since_s": round(max(0.0, now - m.since), 3),
                    "self": m.node_id == self.node.node_id,
                }
            )
        return {"members": out}

    async def sync(self, args: dict[str, Any]) -> Any:
        a = Args("sync", args, {"peer"})
        peer_text = a.str("peer")
        peer = None
        if peer_text is not None and peer_text != "all":
            peer = self._resolve_peer(peer_text)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[SyncReport] = loop.create_future()
        self.node.sync(self.node.now, lambda r: fut.done() or fut.set_result(r), peer)
        report = await fut
        return report.as_dict()

    def _resolve_peer(self, text: str) -> tuple[str, int]:
        for m in self.node.membership.members():
            if text in (m.node_id, f"{m.addr[0]}:{m.addr[1]}"):
                if not m.state.live:
                    raise Unavailable(f"peer {text} is {m.state.label}")
                return m.addr
        raise NotFound(f"no member {text!r}; see the members operation")

    async def compact(self, args: dict[str, Any]) -> Any:
        a = Args("compact", args, {"ns"})
        ns = a.ns(required=False)
        before = self.store.disk_bytes()
        stats_before = {n: self.store.ns_stats(n) for n in self.store.data_namespaces()}
        swept = 0
        rounds = 0
        started = time.monotonic()
        while True:
            result = await self.commit(Sweep(2000))
            swept += len(result.changes)
            rounds += 1
            if rounds % 10 == 0:
                log.info("event=compact_progress swept=%d rounds=%d", swept, rounds)
            if not result.more:
                break
        stats_after = {n: self.store.ns_stats(n) for n in self.store.data_namespaces()}
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
            "disk_bytes_after": self.store.disk_bytes(),
            "seconds": round(time.monotonic() - started, 3),
        }

    async def persist(self, args: dict[str, Any]) -> Any:
        a = Args("persist", args, {"session_id"})
        session_id = a.str("session_id", required=True) or ""
        lock = self._snapshot_locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            path = await asyncio.to_thread(self.store.snapshot, session_id, self.snapshots_dir)
            size = sum(p.stat().st_size for p in path.iterdir())
        return {"session_id": session_id, "path": str(path), "bytes": size}

    async def restore(self, args: dict[str, Any]) -> Any:
        a = Args("restore", args, {"session_id", "ns"})
        session_id = a.str("session_id", required=True) or ""
        if not SESSION_RE.match(session_id):
            raise BadRequest("restore: invalid session_id")
        ns = a.ns(required=False)
        path = self.snapshots_dir / session_id
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
                *(self.commit(op) for op in chunk), return_exceptions=True
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
        now = wall_ms()
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
                    and (
                        cur_view["value"] == view["value"]
                        and cur_view.get("meta") == view.get("meta")
                    )
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

    async def stats(self, args: dict[str, Any]) -> Any:
        Args("stats", args, set())
        return {**self.node.stats(), **self.extra_stats()}

    async def watch(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        a = Args("watch", args, {"ns", "prefix", "values"})
        ns = a.ns(required=False)
        prefix = a.str("prefix", default="") or ""
        with_values = a.bool("values", default=True)
        # Unbounded on purpose: the bound is enforced below, where overflowing
        # turns into one loud end-of-stream instead of silently lost events.
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        store = self.store
        overflowed = False

        def on_change(ch: Change) -> None:
            nonlocal overflowed
            if overflowed or ch.ns == SYSTEM_NS or (ns is not None and ch.ns != ns):
                return
            if not ch.key.startswith(prefix):
                return
            if not (ch.visible_before or ch.visible_after):
                return
            if queue.qsize() >= WATCH_QUEUE:
                overflowed = True
                queue.put_nowait(None)
                return
            event: dict[str, Any] = {
                "ns": ch.ns,
                "key": ch.key,
                "event": _event_name(ch),
                "origin": ch.origin,
                "seq": ch.seq,
            }
            if with_values and ch.visible_after and ch.entry is not None:
                # The value this change itself stored, not whatever a later
                # write of the same batch left; a set is read whole, since a
                # change carries only the members it touched.
                entry = ch.entry
                if entry.orset is not None and SET in entry.live_kinds(wall_ms()):
                    entry = store.get(ch.ns, ch.key) or entry
                view = entry_view(ch.ns, ch.key, entry, wall_ms())
                if view is not None:
                    event["type"] = view["type"]
                    event["value"] = view["value"]
            queue.put_nowait(event)

        unsubscribe = self.node.add_listener(on_change)

        async def events() -> AsyncIterator[Any]:
            try:
                while True:
                    item = await queue.get()
                    if item is None:
                        raise TooLarge("watch fell too far behind; re-subscribe and re-read")
                    yield item
            finally:
                unsubscribe()

        return events()


def _event_name(ch: Change) -> str:
    if ch.visible_after:
        return "put" if ch.kind in ("put", "merge", "ns") else ch.kind
    if ch.kind in ("expire", "collect"):
        return "expire"
    return "delete"
