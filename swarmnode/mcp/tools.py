"""What each memory tool does, in terms of the node's client operations.

A tool call is checked against its schema, then carried out by one or a few
node operations; the result is the node's answer, shaped for an agent. The
rule throughout is that nothing fails quietly: a node error is raised with its
code (the server turns it into a tool error), and an empty answer that may
come from a misspelt namespace is checked and reported as `not_found` instead
of an empty list. The per-action names (memory_store, ...) and memory_usage's
actions reach the same implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from swarmnode.errors import BadRequest, InternalError, NotFound, SwarmError
from swarmnode.mcp import schema
from swarmnode.mcp.schema import DEFAULT_NAMESPACE, USAGE_ACTIONS, ToolSpec, check_arguments


@dataclass(frozen=True)
class BridgeConfig:
    """How the MCP bridge reaches the node and sizes its answers."""

    socket: Path | None = None
    """The node's socket; None means `$SWARMNODE_SOCKET` or the default under the data dir,
    the same resolution the CLI uses, so both reach the same node."""
    timeout: float = 60.0
    """Seconds to wait for the node's reply to one operation before the tool reports the node
    unavailable (the operation may still take effect). sync and compact on big stores are the
    slow ones; raise it if they time out, lower it to learn sooner of a hung node."""
    search_limit: int = 20
    """Results of memory_search and memory_list when the agent gives no limit. Agents read
    every result into their context, so the default is small."""
    register: str | None = None
    """Register this agent id on start (as the socket's owner, the administrator) and speak
    for it from then on; None: use `$SWARMNODE_TOKEN` if set, else no agent identity."""


class NodeClient(Protocol):
    """The node operations the tools use (`swarmnode.client.AsyncClient` is one)."""

    def call(self, op: str, /, **args: Any) -> Awaitable[Any]: ...


Result = dict[str, Any]


class MemoryTools:
    """The tools, bound to one node client."""

    def __init__(self, node: NodeClient, config: BridgeConfig | None = None) -> None:
        self.node = node
        self.config = config or BridgeConfig()
        self.specs: dict[str, ToolSpec] = {spec.name: spec for spec in schema.TOOLS}
        self._impl: dict[str, Callable[[dict[str, Any]], Awaitable[Result]]] = {
            schema.USAGE.name: self.usage,
            schema.STORE.name: self.store,
            schema.RETRIEVE.name: self.retrieve,
            schema.LIST.name: self.list_entries,
            schema.DELETE.name: self.delete,
            schema.SEARCH.name: self.search,
            schema.STATS.name: self.stats,
            schema.VECTOR_SEARCH.name: self.vector_search,
            schema.SYNC.name: self.sync,
            schema.COMPRESS.name: self.compress,
            schema.PERSIST.name: self.persist,
            schema.NAMESPACE_TOOL.name: self.namespace,
            schema.ANALYTICS.name: self.analytics,
            schema.CAS.name: self.cas,
            schema.CLAIM.name: self.claim,
        }
        assert set(self._impl) == set(self.specs)

    async def call(self, name: str, arguments: dict[str, Any] | None) -> Result:
        """Run tool `name`; raises `SwarmError` (with the node's code) when it fails."""
        spec = self.specs.get(name)
        if spec is None:
            raise NotFound(f"unknown tool {name!r}; tools: {', '.join(self.specs)}")
        return await self._impl[name](check_arguments(spec, arguments))

    async def _node(self, op: str, /, **args: Any) -> Any:
        """Call `op`; arguments left at None are not sent, so the node applies its defaults."""
        return await self.node.call(op, **{k: v for k, v in args.items() if v is not None})

    # --- memory_usage and its per-action aliases ------------------------------

    async def usage(self, args: dict[str, Any]) -> Result:
        action = args.pop("action")
        spec = USAGE_ACTIONS[action]
        checked = check_arguments(spec, args, label=f"memory_usage action={action}")
        return {"action": action, **await self._impl[spec.name](checked)}

    async def store(self, args: dict[str, Any]) -> Result:
        ns = args.get("namespace", DEFAULT_NAMESPACE)
        optional = {"ttl": "ttl", "meta": "metadata", "vector": "vector"}
        r = await self.node.call(
            "put",
            ns=ns,
            key=args["key"],
            value=args["value"],
            **{op_arg: args[name] for op_arg, name in optional.items() if name in args},
        )
        return {"stored": True, **r}

    async def retrieve(self, args: dict[str, Any]) -> Result:
        ns = args.get("namespace", DEFAULT_NAMESPACE)
        try:
            if args.get("linearizable"):
                return await self._node("get", ns=ns, key=args["key"], linearizable=True)
            return await self._node("get", ns=ns, key=args["key"])
        except NotFound as exc:
            await self._require_namespace(ns, f"{exc.message}, and ")
            raise

    async def list_entries(self, args: dict[str, Any]) -> Result:
        ns = args.get("namespace", DEFAULT_NAMESPACE)
        r = await self._node(
            "list",
            ns=ns,
            prefix=args.get("prefix"),
            pattern=args.get("pattern"),
            limit=args.get("limit", self.config.search_limit),
            cursor=args.get("cursor"),
            values=args.get("values", True),
        )
        if not r["items"]:
            await self._require_namespace(ns)
        return {"namespace": ns, "count": len(r["items"]), **r}

    async def delete(self, args: dict[str, Any]) -> Result:
        return await self._node(
            "delete", ns=args.get("namespace", DEFAULT_NAMESPACE), key=args["key"]
        )

    async def search(self, args: dict[str, Any]) -> Result:
        pattern, query = args.get("pattern"), args.get("query")
        if pattern is not None and query is not None and pattern != query:
            raise BadRequest("memory_search: give pattern or query, not both")
        text = pattern if pattern is not None else query
        if text is None:
            raise BadRequest("memory_search: give a pattern (or query) to search for")
        ns = args.get("namespace")
        limit = args.get("limit", self.config.search_limit)
        mode = args.get("mode", "auto")
        spaces = await self._namespaces()
        if ns is not None and ns not in spaces:
            raise _no_namespace(ns, spaces)
        targets = [ns] if ns is not None else sorted(spaces)
        embedded = [n for n in targets if spaces[n].get("embedder")]
        if mode == "auto":
            if "*" in text or "?" in text:
                plan = ["glob"]
            elif embedded:
                plan = ["semantic", "substring"]
            else:
                plan = ["substring"]
        elif mode == "semantic" and not embedded:
            where = f"namespace {ns!r} has" if ns is not None else "no namespace has"
            raise BadRequest(
                f"memory_search: semantic search needs an embedder, and {where} none; "
                "define one with memory_namespace action=init embedder=..., or use mode "
                "substring"
            )
        else:
            plan = [mode]
        found = _Found()
        for step in plan:
            if step == "semantic":
                await self._semantic(found, embedded, text, limit, strict=mode == "semantic")
            else:
                r = await self._node(
                    "search",
                    pattern=text,
                    ns=ns,
                    mode=step,
                    limit=limit,
                    **{"in": "keys" if step == "glob" else "both"},
                )
                found.searched.append(
                    f"{step} over keys" if step == "glob" else "substring in keys and values"
                )
                found.truncated |= bool(r.get("truncated"))
                for item in r["items"]:
                    found.add(item["ns"], item, "glob" if step == "glob" else item["match"])
        return found.result(text, mode, ns, limit)

    async def _semantic(
        self, found: _Found, namespaces: list[str], text: str, limit: int, *, strict: bool
    ) -> None:
        """Nearest neighbours of `text` in each namespace; failures are warnings unless strict."""
        for ns in namespaces:
            try:
                r = await self._node("vsearch", ns=ns, text=text, k=limit)
                items = _vsearch_items(r)
            except SwarmError as exc:
                if strict:
                    raise
                found.warnings.append(
                    f"semantic search in {ns!r} failed ({exc.code}): {exc.message}; "
                    "keyword results only"
                )
                continue
            found.searched.append(f"semantic in {ns}")
            for item in items:
                found.add(ns, item, "semantic")

    # --- the other tools ------------------------------------------------------

    async def stats(self, args: dict[str, Any]) -> Result:
        ns = args.get("namespace")
        node = await self._node("stats")
        summary = {
            k: node[k] for k in ("node_id", "address", "uptime_s", "members", "store") if k in node
        }
        if ns is not None:
            await self._require_namespace(ns)
            return {"node": summary, "namespace": await self._node("ns_stats", ns=ns)}
        spaces = await self._node("ns_list")
        return {"node": summary, **spaces}

    async def vector_search(self, args: dict[str, Any]) -> Result:
        given = [name for name in ("vector", "text", "key") if name in args]
        if len(given) != 1:
            raise BadRequest("memory_vector_search: give exactly one of vector, text or key")
        ns = args["namespace"]
        r = await self._node(
            "vsearch",
            ns=ns,
            vector=args.get("vector"),
            text=args.get("text"),
            key=args.get("key"),
            k=args.get("k", 10),
            filter=args.get("filter"),
            ef=args.get("ef"),
        )
        if not _vsearch_items(r):
            await self._require_namespace(ns)
        return {"namespace": ns, **r}

    async def sync(self, args: dict[str, Any]) -> Result:
        target = args.get("target", "all")
        r = await self._node("sync", peer=target)
        return {"target": target, **r}

    async def compress(self, args: dict[str, Any]) -> Result:
        ns = args.get("namespace")
        if ns is not None:
            await self._require_namespace(ns)
        return await self._node("compact", ns=ns)

    async def persist(self, args: dict[str, Any]) -> Result:
        action = args.get("action", "persist")
        session_id = args["sessionId"]
        if action == "persist":
            if "namespace" in args:
                raise BadRequest(
                    "memory_persist: namespace applies to action restore only; a snapshot "
                    "holds every namespace"
                )
            return {"action": action, **await self._node("persist", session_id=session_id)}
        return {
            "action": action,
            **await self._node("restore", session_id=session_id, ns=args.get("namespace")),
        }

    async def namespace(self, args: dict[str, Any]) -> Result:
        action = args.pop("action")
        ns = args.pop("namespace", None)
        if action != "init" and args:
            raise BadRequest(
                f"memory_namespace: {', '.join(sorted(args))} apply to action init only"
            )
        if action == "stats":
            return {"action": action, **await self.stats({"namespace": ns} if ns else {})}
        if ns is None:
            raise BadRequest(f"memory_namespace: action {action} needs a namespace")
        if action == "init":
            return {"action": action, **await self._node("ns_init", ns=ns, **args)}
        await self._require_namespace(ns)
        return {"action": action, **await self._node("ns_delete", ns=ns)}

    async def cas(self, args: dict[str, Any]) -> Result:
        extra = {"expected": args["expected"]} if "expected" in args else {}
        return await self._node(
            "cas",
            ns=args.get("namespace", "decisions"),
            key=args["key"],
            value=args["value"],
            **extra,
        )

    async def claim(self, args: dict[str, Any]) -> Result:
        action = args.get("action", "claim")
        needs = {"claim": ("lease",), "renew": ("lease", "token"), "release": ("token",)}
        missing = [name for name in needs[action] if name not in args]
        unused = [name for name in ("lease", "token") if name in args and name not in needs[action]]
        if missing or unused:
            raise BadRequest(
                f"memory_claim: action {action} takes {' and '.join(needs[action])}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; {', '.join(unused)} does not apply" if unused else "")
            )
        call = {name: args[name] for name in needs[action]}
        r = await self._node(
            action, ns=args.get("namespace", "tasks"), key=args["key"], owner=args["owner"], **call
        )
        return {"action": action, **r}

    async def analytics(self, args: dict[str, Any]) -> Result:
        return await self._node("analytics", timeframe=args.get("timeframe", "1h"))

    # --- namespaces -----------------------------------------------------------

    async def _namespaces(self) -> dict[str, dict[str, Any]]:
        r = await self._node("ns_list")
        return {n["name"]: n for n in r["namespaces"]}

    async def _require_namespace(self, ns: str, context: str = "") -> None:
        spaces = await self._namespaces()
        if ns not in spaces:
            raise _no_namespace(ns, spaces, context)


def _no_namespace(ns: str, spaces: dict[str, Any], context: str = "") -> NotFound:
    return NotFound(
        f"{context}namespace {ns!r} does not exist: it was never defined and holds no live "
        f"entries (known: {', '.join(sorted(spaces))}). A namespace exists once something is "
        "stored in it or memory_namespace action=init defines it"
    )


def _vsearch_items(result: Any) -> list[dict[str, Any]]:
    items = result.get("items") if isinstance(result, dict) else None
    if not isinstance(items, list):
        raise InternalError(f"vsearch answered without an items list: {result!r:.200}")
    return items


class _Found:
    """Search results gathered from several searches, one per key, saying how each matched."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.searched: list[str] = []
        self.warnings: list[str] = []
        self.truncated = False

    def add(self, ns: str, item: dict[str, Any], how: str) -> None:
        key = item["key"]
        hit = self.items.get((ns, key))
        if hit is None:
            hit = self.items[(ns, key)] = {"ns": ns, "key": key, "match": []}
        for field in ("type", "value", "meta", "score", "conflict"):
            if field in item and field not in hit:
                hit[field] = item[field]
        if how not in hit["match"]:
            hit["match"].append(how)

    def result(self, text: str, mode: str, ns: str | None, limit: int) -> Result:
        items = [{**h, "match": "+".join(h["match"])} for h in self.items.values()]
        truncated = self.truncated or len(items) > limit
        out: Result = {
            "query": text,
            "mode": mode,
            "namespace": ns if ns is not None else "all",
            "searched": self.searched,
            "count": min(len(items), limit),
            "items": items[:limit],
            "truncated": truncated,
        }
        if self.warnings:
            out["warnings"] = self.warnings
        return out
