"""LangGraph's `BaseStore` on swarmnode: LangGraph agents on different hosts share one memory.

`SwarmnodeStore` keeps a LangGraph store in one swarmnode namespace (default
`langgraph`; `agent:<id>` for a private one) of the local node, which
replicates it to every other node. `batch` and the sync methods use a
blocking client, `abatch` and the `a*` methods an asyncio client, on the
same socket and token, so one object serves both LangGraph's sync and async
graphs.

Layout. An item `(namespace, key)` is the entry `<label>.<label>...\\x1f<key>`
(LangGraph forbids `.` in labels, so the path reads back unambiguously), whose
value is `{"item": <the item's value>, "text": <what to embed>}` and whose
metadata carries the namespace (`lg_ns`, and each ancestor as `lg_ns<depth>`
so a vector search can be restricted to a namespace prefix by swarmnode's own
filter), the key, the creation time and the TTL. Natural-language `search`
goes through the swarmnode namespace's embedder (define it with
`ns_init(ns, embedder="all-MiniLM-L6-v2")`); the text embedded is taken from
the item by the store's `index` fields (the whole item by default), as
LangGraph's own stores do. Filters on values the node cannot apply are applied
here, fetching further hits until `limit` are found or none are left.

TTL: `put(..., ttl=minutes)` becomes the entry's TTL, so every replica expires
it at the same moment; a `get` or `search` with `refresh_ttl` sets it again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.base.embed import get_text_at_path

from swarmnode.client import AsyncClient, Client
from swarmnode.crdt.hlc import make_ts, wall_ms
from swarmnode.errors import NotFound

SEP = "\x1f"
"""Between the namespace path and the key in a swarmnode key."""
PAGE = 1000
MAX_FETCH = 10_000


def entry_key(namespace: tuple[str, ...], key: str) -> str:
    return ".".join(namespace) + SEP + key


def _meta(namespace: tuple[str, ...], key: str, created_ms: int, ttl: float | None) -> dict:
    meta: dict[str, Any] = {"lg_ns": list(namespace), "lg_key": key, "lg_created": created_ms}
    for depth in range(len(namespace)):
        meta[f"lg_ns{depth}"] = ".".join(namespace[: depth + 1])
    if ttl is not None:
        meta["lg_ttl"] = ttl
    return meta


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _item(raw: dict[str, Any], score: float | None = None, searched: bool = False) -> Item | None:
    meta = raw.get("meta") or {}
    value = raw.get("value")
    if "lg_ns" not in meta or not isinstance(value, dict):
        return None  # not an item of a LangGraph store
    namespace = tuple(meta["lg_ns"])
    updated = _when(wall_ms(raw["ts"]))
    created = _when(meta.get("lg_created", wall_ms(raw["ts"])))
    if searched:
        return SearchItem(namespace, meta["lg_key"], value["item"], created, updated, score)
    return Item(
        value=value["item"],
        key=meta["lg_key"],
        namespace=namespace,
        created_at=created,
        updated_at=updated,
    )


def matches(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics: equality, nested maps, and $eq $ne $gt $gte $lt $lte."""
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_compare(value, op, arg) for op, arg in wanted.items())
        return isinstance(value, dict) and all(matches(value.get(k), v) for k, v in wanted.items())
    return value == wanted


def _compare(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return value == arg
    if op == "$ne":
        return value != arg
    try:
        a, b = float(value), float(arg)
    except (TypeError, ValueError):
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _has_prefix(namespace: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return namespace[: len(prefix)] == prefix


def _namespace_matches(namespace: tuple[str, ...], op: ListNamespacesOp) -> bool:
    for cond in op.match_conditions or ():
        path = tuple(cond.path)
        if len(path) > len(namespace):
            return False
        part = namespace[: len(path)] if cond.match_type == "prefix" else namespace[-len(path) :]
        if any(p != "*" and p != n for p, n in zip(path, part, strict=True)):
            return False
    return True


class SwarmnodeStore(BaseStore):
    """A LangGraph store kept in a swarmnode namespace of the local node."""

    supports_ttl = True

    def __init__(
        self,
        ns: str = "langgraph",
        *,
        socket_path: str | None = None,
        token: str | None = None,
        index: dict[str, Any] | None = None,
        ttl: TTLConfig | None = None,
        timeout: float | None = 60.0,
    ) -> None:
        """`index`: `{"fields": [...]}` paths of what to embed (default: the whole item);
        `ttl`: LangGraph's TTLConfig (`default_ttl` in minutes, `refresh_on_read`)."""
        self.ns = ns
        self.fields = list((index or {}).get("fields") or ["$"])
        self.ttl_config = ttl
        self._socket_path = socket_path
        self._token = token
        self._timeout = timeout
        self.client = Client(socket_path, token=token, timeout=timeout)
        self._aclients: dict[int, AsyncClient] = {}

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        for client in self._aclients.values():
            await client.close()
        self._aclients.clear()

    def _aclient(self) -> AsyncClient:
        """One asyncio client per event loop (a client belongs to the loop it started on)."""
        loop = id(asyncio.get_running_loop())
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = AsyncClient(
                self._socket_path, token=self._token, timeout=self._timeout
            )
        return client

    # --- batches -------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return [self._run(op, self.client.call) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        client = self._aclient()
        return [await self._arun(op, client.call) for op in ops]

    def _run(self, op: Op, call: Any) -> Result:
        """One op with a blocking `call(op_name, **args)`."""
        gen = self._plan(op)
        reply: Any = None
        try:
            while True:
                name, args = gen.send(reply)
                try:
                    reply = call(name, **args)
                except NotFound as exc:
                    reply = exc
        except StopIteration as done:
            return done.value

    async def _arun(self, op: Op, call: Any) -> Result:
        gen = self._plan(op)
        reply: Any = None
        try:
            while True:
                name, args = gen.send(reply)
                try:
                    reply = await call(name, **args)
                except NotFound as exc:
                    reply = exc
        except StopIteration as done:
            return done.value

    # --- what each op asks of the node ----------------------------------------------------
    #
    # Each plan is a generator that yields (operation, arguments) and receives the
    # node's answer (a NotFound comes back as the exception), so the sync and async
    # forms share one implementation.

    def _plan(self, op: Op) -> Any:
        if isinstance(op, GetOp):
            return self._get(op)
        if isinstance(op, PutOp):
            return self._put(op)
        if isinstance(op, SearchOp):
            return self._search(op)
        if isinstance(op, ListNamespacesOp):
            return self._list_namespaces(op)
        raise ValueError(f"unknown operation {type(op).__name__}")

    def _refresh(self, namespace: tuple[str, ...], key: str, raw: dict, wanted: bool) -> Any:
        ttl = (raw.get("meta") or {}).get("lg_ttl")
        if ttl and self._refresh_wanted(wanted):
            yield "expire", {"ns": self.ns, "key": entry_key(namespace, key), "ttl": ttl * 60}

    def _refresh_wanted(self, wanted: bool | None) -> bool:
        if wanted is not None:
            return bool(wanted)
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    def _get(self, op: GetOp) -> Any:
        raw = yield "get", {"ns": self.ns, "key": entry_key(op.namespace, op.key)}
        if isinstance(raw, NotFound):
            return None
        item = _item(raw)
        if item is not None:
            yield from self._refresh(op.namespace, op.key, raw, op.refresh_ttl)
        return item

    def _put(self, op: PutOp) -> Any:
        key = entry_key(op.namespace, op.key)
        if op.value is None:
            yield "delete", {"ns": self.ns, "key": key}
            return None
        old = yield "get", {"ns": self.ns, "key": key}
        created = (old.get("meta") or {}).get("lg_created") if isinstance(old, dict) else None
        ttl = op.ttl
        if ttl is None and self.ttl_config:
            ttl = self.ttl_config.get("default_ttl")
        value: dict[str, Any] = {"item": dict(op.value)}
        if op.index is not False:
            fields = self.fields if op.index is None else list(op.index)
            texts = [t for f in fields for t in self._texts(op.value, f)]
            if texts:
                value["text"] = "\n".join(texts)
        created_ms = created if created is not None else _now_ms()
        args: dict[str, Any] = {
            "ns": self.ns,
            "key": key,
            "value": value,
            "meta": _meta(op.namespace, op.key, created_ms, ttl),
            "ttl": ttl * 60 if ttl else 0,
        }
        yield "put", args
        return None

    def _texts(self, value: Any, field: str) -> list[str]:
        if field == "$":
            return [json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)]
        return [t if isinstance(t, str) else json.dumps(t) for t in get_text_at_path(value, field)]

    def _search(self, op: SearchOp) -> Any:
        prefix = tuple(op.namespace_prefix)
        wanted = op.offset + op.limit
        found: list[Item] = []
        if op.query:
            k = max(wanted, 10)
            while True:
                args: dict[str, Any] = {"ns": self.ns, "text": op.query, "k": k}
                if prefix:
                    args["filter"] = {f"lg_ns{len(prefix) - 1}": ".".join(prefix)}
                reply = yield "vsearch", args
                if isinstance(reply, NotFound):
                    return []
                found = []
                for hit in reply["items"]:
                    hit = {**hit, "ts": hit.get("ts") or _ts_of(hit)}
                    item = _item(hit, hit.get("score"), searched=True)
                    if item is not None and self._passes(item, prefix, op.filter):
                        found.append(item)
                if len(found) >= wanted or len(reply["items"]) < k or k >= MAX_FETCH:
                    break
                k = min(k * 2, MAX_FETCH)
        else:
            path = ".".join(prefix)
            cursor = None
            while True:
                args = {"ns": self.ns, "prefix": path, "values": True, "limit": PAGE}
                if cursor is not None:
                    args["cursor"] = cursor
                page = yield "list", args
                if isinstance(page, NotFound):
                    return []
                for raw in page["items"]:
                    item = _item(raw, searched=True)
                    if item is not None and self._passes(item, prefix, op.filter):
                        found.append(item)
                cursor = page.get("cursor")
                if cursor is None:
                    break
            found.sort(key=lambda i: i.updated_at, reverse=True)
        page_items = found[op.offset : op.offset + op.limit]
        if self._refresh_wanted(op.refresh_ttl):
            for item in page_items:
                yield from self._refresh_item(item)
        return page_items

    def _refresh_item(self, item: Item) -> Any:
        raw = yield "get", {"ns": self.ns, "key": entry_key(item.namespace, item.key)}
        if isinstance(raw, dict):
            yield from self._refresh(item.namespace, item.key, raw, True)

    def _passes(self, item: Item, prefix: tuple[str, ...], wanted: dict | None) -> bool:
        if not _has_prefix(item.namespace, prefix):
            return False
        return not wanted or all(matches(item.value.get(k), v) for k, v in wanted.items())

    def _list_namespaces(self, op: ListNamespacesOp) -> Any:
        found: set[tuple[str, ...]] = set()
        cursor = None
        while True:
            args: dict[str, Any] = {"ns": self.ns, "values": True, "limit": PAGE}
            if cursor is not None:
                args["cursor"] = cursor
            page = yield "list", args
            if isinstance(page, NotFound):
                return []
            for raw in page["items"]:
                namespace = tuple((raw.get("meta") or {}).get("lg_ns") or ())
                if namespace and _namespace_matches(namespace, op):
                    found.add(namespace[: op.max_depth] if op.max_depth else namespace)
            cursor = page.get("cursor")
            if cursor is None:
                break
        return sorted(found)[op.offset : op.offset + op.limit]


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _ts_of(hit: dict[str, Any]) -> int:
    """vsearch hits carry no timestamp; a search item's updated_at is its creation then."""
    return make_ts((hit.get("meta") or {}).get("lg_created", _now_ms()))
