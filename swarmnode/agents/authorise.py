"""The `authorise` step: every request checked against the caller's access, before it runs.

First after `measure` in the service chain, before `validate`, so a refused
caller learns nothing but `forbidden` (validation errors name existing
namespaces; `validate` shows only those in `notes["readable"]`). It looks only
at the `ns` argument when it is a string: whatever else is wrong with the
request is `validate`'s to say. It resolves who the request speaks for
(`Principal`), then applies the operation's rule:

- an operation that names a namespace checks it: reading ops need read
  access, writing ops write access (restoring from the archive both),
  defining or deleting a namespace needs its ownership; a refusal is
  `forbidden` and names the namespace;
- an operation that spans namespaces (`search` without `ns`, `watch` without
  `ns`, `ns_list`, `ns_stats` without `ns`, `analytics`, `compact`) runs, and
  whatever concerns a namespace the caller cannot read is left out of its
  answer, counts included;
- node-wide housekeeping that would touch or copy every namespace
  (`persist`, a `restore` without `ns`) is the administrator's; `stats` shows
  an agent only what concerns no namespace;
- an operation this module has no rule for is judged by its table entry:
  its `ns` argument by its kind (read, write, stream), and an admin-kind
  operation without one is the administrator's. So an operation added to the
  table later is never left open by omission.

The rules read the namespace definitions of the catalog published at the last
commit, so a change of access applies from the next request on; a watch stream
checks each event when it is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from swarmnode.agents.access import (
    ADMIN,
    NOBODY,
    Principal,
    can_define,
    can_read,
    can_write,
)
from swarmnode.agents.config import AgentsConfig
from swarmnode.agents.registrations import Roster, lease_key
from swarmnode.errors import Forbidden
from swarmnode.service.chain import Hooks, Next
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import OpSpec, Request
from swarmnode.storage.namespaces import AGENTS_NS, NamespaceDef
from swarmnode.storage.ops import Put

log = logging.getLogger("swarmnode.agents")

OPEN_OPS = frozenset({"ping", "hello"})
"""What a connection may do before it has presented a token."""
READ_OPS = frozenset(
    {"get", "list", "smembers", "vsearch", "vsearch_many", "archive_list", "archive_get"}
)
WRITE_OPS = frozenset({"put", "delete", "expire", "incr", "sadd", "srem"})
SPANNING_OPS = frozenset({"search", "watch", "ns_stats"})
"""Scoped to `ns` when given, otherwise filtered to what the caller can read."""
ADMIN_OPS = frozenset({"persist", "agent_register"})
SELF_OPS = frozenset({"agent_renew", "agent_revoke"})
"""An agent may do these to itself; the administrator to anyone."""
CLUSTER_OPS = frozenset({"members", "sync", "agent_list"})
"""Concern no namespace's data (agent_list shows an agent only itself)."""
FILTERED_OPS = SPANNING_OPS | {"ns_list", "compact", "stats", "analytics"}
"""What an agent gets of these answers is filtered after the call."""
NODE_KEYS = ("node_id", "address", "uptime_s", "members", "incarnation", "local_health")
"""What of `stats` an agent sees: nothing that counts or names a namespace."""

Readable = Callable[[str], bool]
MAX_DECISIONS = 65_536
"""Access decisions remembered (bounded: cleared when full)."""


class Authorise:
    name = "authorise"

    def __init__(self, node: NodeServices, roster: Roster, config: AgentsConfig) -> None:
        self.node = node
        self.roster = roster
        self.config = config
        self._renewing: set[str] = set()
        self._principals: dict[str, Principal] = {}
        """Per agent, the principal of its current registration object (a registration is a
        new object whenever its records change)."""
        self._readables: dict[str, tuple[Principal, Readable]] = {}
        """Per agent, `_readable` of its current principal."""
        self._decisions: dict[tuple[str, str, str], tuple[NamespaceDef, Any, bool]] = {}
        """(agent, mode, ns) -> (the definition and registration it was decided on, allowed):
        both are new objects whenever they change, so a decision is reused only while it
        holds."""

    # --- who is asking -----------------------------------------------------------

    def principal(self, req: Request) -> Principal:
        """Who the request speaks for; `forbidden` for a token that no longer holds."""
        ctx = req.ctx
        if getattr(ctx, "internal", False):
            return ADMIN
        agent = getattr(ctx, "agent", None)
        session = getattr(ctx, "session", None)
        token_id = None
        if session is not None and session.agent is not None:
            agent, token_id = session.agent, session.token_id
        if agent is None:
            if not self.config.require_tokens:
                return ADMIN
            if self.config.owner_is_admin and session is not None and session.is_owner:
                return ADMIN
            return NOBODY
        reg = self.roster.get(agent)
        now = self.node.wall_ms()
        if reg is None:
            raise Forbidden(f"agent {agent!r} is not registered (any more); register it again")
        if token_id is not None and reg.token.token_id != token_id:
            raise Forbidden(f"the token of agent {agent!r} was replaced; hello with the new one")
        if reg.revoked or now >= reg.expires_ms:
            raise Forbidden(f"the token of agent {agent!r} is {reg.state(now)}")
        if reg.expires_ms - now < reg.lease_s * 500:
            self._renew(agent, now + int(reg.lease_s * 1000))
        who = self._principals.get(agent)
        if who is None or who.registration is not reg:
            who = self._principals[agent] = Principal.of(reg)
        return who

    def _renew(self, agent: str, expires_ms: int) -> None:
        """Extend a lease that is half gone, once at a time per agent (any request renews)."""
        if agent in self._renewing:
            return
        self._renewing.add(agent)

        async def renew() -> None:
            try:
                op = Put(AGENTS_NS, lease_key(agent), {"expires_ms": expires_ms}, agent=agent)
                await self.node.commit(None, op)
            except Exception as exc:  # a failed renewal is retried by the next request
                log.warning("event=lease_renew_failed agent=%s error=%s", agent, exc)
            finally:
                self._renewing.discard(agent)

        asyncio.get_running_loop().create_task(renew())

    # --- the step ------------------------------------------------------------------

    def hooks(self, spec: OpSpec) -> Hooks | None:
        """Inline for every operation whose answer is not filtered: all its checks come
        before the call."""
        return None if spec.name in FILTERED_OPS else Hooks(enter=self.admit)

    def admit(self, req: Request) -> bool:
        """Who the request speaks for (`notes`), and every check made before the call;
        raises `forbidden`. An operation of `FILTERED_OPS` has its answer filtered by
        `__call__` besides."""
        op = req.op
        if op in OPEN_OPS:
            who = self._quiet_principal(req)
            req.notes["principal"] = who
            req.notes["agent"] = who.agent
            return False
        who = self.principal(req)
        req.notes["principal"] = who
        req.notes["agent"] = who.agent
        if who.is_admin:
            return False
        if who.kind == "nobody":
            raise Forbidden("this node requires a token: send hello {token} first")
        req.notes["readable"] = self._readable(who)
        if not isinstance(req.args, dict):
            return False  # `validate` refuses it
        ns = req.args.get("ns")
        if op in READ_OPS:
            self._check(who, ns, "read")
        elif op in WRITE_OPS:
            self._check(who, ns, "write")
        elif op in ("archive_restore", "restore"):
            if op == "restore" and ns is None:
                raise Forbidden("restore: an agent must name the namespace it restores")
            self._check(who, ns, "read")
            self._check(who, ns, "write")
        elif op in SPANNING_OPS or op == "compact":
            if ns is not None:
                self._check(who, ns, "read")
        elif op in ("ns_init", "ns_delete"):
            self._check_define(who, req)
        elif op in SELF_OPS:
            if req.args.get("agent") not in (None, who.agent):
                raise Forbidden(f"{op}: an agent may only {op.split('_')[1]} itself")
        elif op in ADMIN_OPS:
            raise Forbidden(f"{op} is for the administrator")
        elif op not in CLUSTER_OPS and op not in FILTERED_OPS:
            self._by_kind(who, req)
        return False

    async def __call__(self, req: Request, nxt: Next) -> Any:
        if not req.known:
            return await nxt(req)
        self.admit(req)
        op = req.op
        readable = req.notes.get("readable")
        if op not in FILTERED_OPS or readable is None or not isinstance(req.args, dict):
            return await nxt(req)
        if op == "stats":
            result = await nxt(req)
            return {k: result[k] for k in NODE_KEYS if k in result}
        ns = req.args.get("ns")
        result = await nxt(req)
        if op in SPANNING_OPS:
            # A stream is checked event by event: access may change while it runs.
            return self._filter(op, result, readable) if ns is None or op == "watch" else result
        return self._filter(op, result, readable)

    def _quiet_principal(self, req: Request) -> Principal:
        """ping and hello answer whatever state the connection's token is in."""
        try:
            return self.principal(req)
        except Forbidden:
            return NOBODY

    # --- rules -------------------------------------------------------------------

    def _check(self, who: Principal, ns: Any, mode: str) -> None:
        if not isinstance(ns, str):
            return
        definition = self.node.store.catalog.namespace(ns)
        key = (who.agent or "", mode, ns)
        decided = self._decisions.get(key)
        if decided is not None and decided[0] is definition and decided[1] is who.registration:
            allowed = decided[2]
        else:
            allowed = (can_read if mode == "read" else can_write)(who, ns, definition)
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = (definition, who.registration, allowed)
        if not allowed:
            raise Forbidden(f"agent {who.agent!r} may not {mode} namespace {ns!r}")

    def _check_define(self, who: Principal, req: Request) -> None:
        ns = req.args.get("ns")
        if not isinstance(ns, str):
            return
        catalog = self.node.store.catalog
        definition = catalog.namespace(ns)
        exists = ns in catalog.definitions and not definition.deleted
        if not can_define(who, ns, definition, exists or definition.builtin):
            raise Forbidden(f"agent {who.agent!r} may not define or delete namespace {ns!r}")
        if req.op == "ns_init" and not exists and req.args.get("owner") is None:
            req.args["owner"] = who.agent

    def _by_kind(self, who: Principal, req: Request) -> None:
        """An operation with no rule of its own: judged by its kind and its `ns`."""
        ns = req.args.get("ns")
        kind = req.spec.kind
        if isinstance(ns, str):
            self._check(who, ns, "write" if kind == "write" else "read")
            if kind == "write":
                self._check(who, ns, "read")
        elif kind == "admin":
            raise Forbidden(f"{req.op} is for the administrator")

    def _readable(self, who: Principal) -> Readable:
        """Whether `who` may read a namespace, as of each call; one function per principal
        (a principal is a new object whenever its registration changes)."""
        kept = self._readables.get(who.agent or "")
        if kept is not None and kept[0] is who:
            return kept[1]
        catalog_of = lambda: self.node.store.catalog  # noqa: E731 - read at each call

        def readable(ns: str) -> bool:
            return can_read(who, ns, catalog_of().namespace(ns))

        self._readables[who.agent or ""] = (who, readable)
        return readable

    # --- answers that span namespaces -------------------------------------------

    def _filter(self, op: str, result: Any, readable: Readable) -> Any:
        if op == "search":
            # The executor already scanned only readable namespaces (`notes["readable"]`),
            # so its counts cover nothing else; this is a second guard.
            result["items"] = [i for i in result["items"] if readable(i["ns"])]
            return result
        if op == "watch":
            return _FilteredStream(result, readable)
        if op == "ns_stats":
            result["namespaces"] = {n: v for n, v in result["namespaces"].items() if readable(n)}
            return result
        if op == "ns_list":
            result["namespaces"] = [i for i in result["namespaces"] if readable(i["name"])]
            return result
        if op == "compact":
            return filter_compact(result, readable)
        if op == "analytics":
            return filter_analytics(result, readable)
        return result


class _FilteredStream:
    """Events of namespaces the caller can read at the moment each is sent. A class, not an
    async generator: closing it closes the stream it reads even if it was never iterated
    (a generator's `finally` does not run then, and a watch's relay would live on)."""

    def __init__(self, events: AsyncIterator[Any], readable: Readable) -> None:
        self._events = events
        self._readable = readable

    def __aiter__(self) -> _FilteredStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            event = await self._events.__anext__()
            if self._readable(event["ns"]):
                return event

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()


def filter_compact(result: dict[str, Any], readable: Readable) -> dict[str, Any]:
    """What `compact` did to the namespaces the caller can read; no store-wide figure."""
    removed = {n: r for n, r in result.get("removed", {}).items() if readable(n)}
    out = {
        "removed": removed,
        "entries_removed": sum(r["entries"] for r in removed.values()),
        "seconds": result.get("seconds"),
    }
    archive = result.get("archive")
    if isinstance(archive, dict):
        per_ns = {n: a for n, a in archive.get("namespaces", {}).items() if readable(n)}
        out["archive"] = summarise_archive(per_ns)
    return out


def summarise_archive(per_ns: dict[str, dict[str, int]]) -> dict[str, Any]:
    entries = sum(a["entries"] for a in per_ns.values())
    raw = sum(a["bytes"] for a in per_ns.values())
    stored = sum(a["compressed_bytes"] for a in per_ns.values())
    return {
        "entries": entries,
        "bytes": raw,
        "compressed_bytes": stored,
        "compression_ratio": round(raw / stored, 3) if stored else None,
        "namespaces": per_ns,
    }


def filter_analytics(report: dict[str, Any], readable: Readable) -> dict[str, Any]:
    """The analytics of the namespaces the caller can read (and of no namespace at all).

    Totals are recomputed from what is left, so no count includes an operation on a
    namespace the caller cannot read.
    """
    ops = report["operations"]
    by_ns = {n: k for n, k in ops["by_namespace"].items() if _shown(n, readable)}
    by_kind: dict[str, int] = {}
    for kinds in by_ns.values():
        for kind, n in kinds.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    ops["by_namespace"] = by_ns
    ops["by_kind"] = dict(sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0])))
    ops["total"] = sum(by_kind.values())
    reads = report["reads"]
    kept = {n: r for n, r in reads["by_namespace"].items() if _shown(n, readable)}
    hits = sum(r["hits"] for r in kept.values())
    misses = sum(r["misses"] for r in kept.values())
    reads.update(
        hits=hits,
        misses=misses,
        hit_ratio=round(hits / (hits + misses), 4) if hits + misses else None,
        by_namespace=kept,
    )
    # Latency and errors are not broken down by namespace, so they cannot be filtered:
    # an agent sees only what concerns the namespaces it reads.
    report.pop("latency_ms", None)
    report.pop("errors", None)
    return report


def _shown(ns: str, readable: Readable) -> bool:
    """`-` (no namespace) is shown; "(other)" and "(invalid)" mix namespaces, so not."""
    if ns == "-":
        return True
    if ns.startswith("("):
        return False
    return readable(ns)
