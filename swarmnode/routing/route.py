"""The `route` step: where a request on a sharded namespace runs.

It sits last in the service chain, just before `execute`, so a request has
been measured, validated, authorised and embedded by the node the client
reached, whichever node runs it. A namespace held whole (`replicas = all`,
the default) passes straight through: today's path, untouched.

- A read of a key runs here when this node owns the key's partition and has
  it complete; otherwise it goes to a live owner, nearest first (by the
  round trips of earlier calls), the next owner when one does not answer or
  is still receiving the partition. No owner: `unavailable`, naming the
  partition, never an empty answer that looks real.
- A write runs on an owner (here if this node is one), which commits it and,
  with `w` above 1, waits until w - 1 other owners have committed it too; the
  write then spreads among the owners by gossip. An owner that does not
  answer in time is replaced by the next for writes that can safely run
  twice (put without a condition, delete, expire, sadd, srem); for the others
  (incr, conditional puts) the outcome is unknown and said so. When no owner
  answers at all, the write is kept here as a hint (`hinted: true` in the
  reply, with `w = 1`), and the handoff gives it to the owners when they are
  back (Dynamo's hinted handoff).
- list, search, vsearch, vsearch_many and ns_stats scatter to a covering set of owners
  (each partition once, this node first, then the fewest nodes) and merge
  what comes back (`gather`); a partition nobody answered for makes the
  reply `partial`, naming what is missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from swarmnode.crdt.codec import decode_entry, encode_entry
from swarmnode.errors import NotFound, SwarmError, Unavailable
from swarmnode.placement.coverage import cover
from swarmnode.routing import gather
from swarmnode.routing.rpc import TIMED_OUT
from swarmnode.routing.wire import not_ready, op_request, replica_request, result_of
from swarmnode.service.chain import NOTHING, Hooks, Next, Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import TABLE, OpSpec, Request
from swarmnode.storage.ops import Change, OpResult

log = logging.getLogger("swarmnode.routing")

KEYED_READS = frozenset({"get", "smembers"})
KEYED_WRITES = frozenset({"put", "delete", "expire", "incr", "sadd", "srem"})
SCATTERS = frozenset({"list", "search", "vsearch", "vsearch_many", "ns_stats"})
ROUTED = KEYED_READS | KEYED_WRITES | SCATTERS


def retryable(op: str, args: dict[str, Any]) -> bool:
    """Whether a write may run on another owner after one did not answer: running it
    twice leaves what running it once does."""
    if op == "incr":
        return False
    if op == "put":
        return not (args.get("if_absent") or args.get("if_exists"))
    return True


class Observing:
    """A request context that also hands the committed result to `also`."""

    def __init__(self, inner: Any, also: Callable[[OpResult], None]) -> None:
        self._inner = inner
        self._also = also

    def observe(self, result: OpResult) -> None:
        self._also(result)
        inner = getattr(self._inner, "observe", None)
        if inner is not None:
            inner(result)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Route:
    """The `route` step (see the module docstring)."""

    name = "route"

    def __init__(self, services: NodeServices, service: Service) -> None:
        self.services = services
        self.service = service
        self.host = services.host
        self.config = self.host.node.config.placement
        self._sharding = self.placement.map.sharding
        """A namespace's sharding (None: held whole), from the node's partition map (one
        for the node's life), bound once: `routed` asks it for every request."""

    @property
    def placement(self) -> Any:
        return self.host.node.placement

    def hooks(self, spec: OpSpec) -> Hooks:
        """Nothing for an operation it never routes; otherwise a check, inline, of
        whether this request needs routing (`routed`)."""
        return Hooks(enter=self.routed) if spec.name in ROUTED else NOTHING

    def routed(self, req: Request) -> bool:
        """Whether the request needs this step in full: it is on a sharded namespace (or
        on all namespaces), and did not come from another node."""
        if req.notes.get("remote") or not req.known:
            return False
        args = req.args
        ns = args.get("ns")
        if ns is None:
            return req.op in ("search", "ns_stats")
        if req.op == "get" and args.get("linearizable"):
            return False
        return type(ns) is str and self._sharding(ns) is not None

    async def __call__(self, req: Request, nxt: Next) -> Any:
        if not self.routed(req):
            return await nxt(req)
        op = req.op
        if op in ("search", "ns_stats") and req.args.get("ns") is None:
            return await self._all_namespaces(req, nxt)
        if op in KEYED_READS:
            return await self.read(req, nxt)
        if op in KEYED_WRITES:
            return await self.write(req, nxt)
        if op in SCATTERS:
            return await self.scatter(req, nxt)
        return await nxt(req)

    # --- owners --------------------------------------------------------------------

    def _settled(self, ns: str) -> None:
        if self.placement.map.view is None:
            raise Unavailable(
                f"namespace {ns!r} is sharded and this node has not settled its view of the "
                "cluster yet (it just started); retry in a moment"
            )

    def _live(self) -> dict[str, Any]:
        """The live peers' addresses by node id (this node left out)."""
        return dict(self.host.node.membership.live_peers())

    def _others(
        self, ns: str, partition: int, live: dict[str, Any] | None = None
    ) -> list[tuple[str, Any]]:
        """The other live owners of a partition, nearest first (rank order among equals).
        A scatter passes `live` (from `_live`) once for all its partitions."""
        owners = self.placement.map.owners(ns, partition)
        rtt = self.host.node.calls.rtt
        if live is None:
            live = self._live()
        found = []
        for rank, node_id in enumerate(owners):
            addr = live.get(node_id)
            if addr is not None:
                found.append((rtt.get(addr, float("inf")), rank, node_id, addr))
        found.sort()
        return [(node_id, addr) for _, _, node_id, addr in found]

    def _unreachable(self, op: str, ns: str, partition: int) -> Unavailable:
        owners = ", ".join(self.placement.map.owners(ns, partition))
        return Unavailable(
            f"{op}: no owner of partition {partition} of {ns!r} is reachable (owners: {owners})"
        )

    async def _ask(self, addr: Any, body: dict[str, Any]) -> Any:
        return await self.host.call(addr, body, self.config.request_timeout)

    # --- keyed reads -------------------------------------------------------------------

    async def read(self, req: Request, nxt: Next) -> Any:
        ns, key = req.args["ns"], req.args["key"]
        self._settled(ns)
        partition = self.placement.map.partition_of(ns, key)
        if self.placement.map.ready(ns, partition):
            return await nxt(req)
        body = op_request(req.op, req.args, agent=req.notes.get("agent"))
        for _, addr in self._others(ns, partition):
            answer = await self._ask(addr, body)
            if answer is TIMED_OUT or not_ready(answer):
                continue
            return result_of(answer)
        raise self._unreachable(req.op, ns, partition)

    # --- keyed writes -------------------------------------------------------------------

    async def write(self, req: Request, nxt: Next) -> Any:
        ns, key = req.args["ns"], req.args["key"]
        self._settled(ns)
        partition = self.placement.map.partition_of(ns, key)
        if self.placement.map.owns(ns, partition):
            return await self.commit_here(req, nxt, partition)
        observe = getattr(req.ctx, "observe", None) is not None
        body = op_request(req.op, req.args, agent=req.notes.get("agent"), observe=observe)
        others = self._others(ns, partition)
        for node_id, addr in others:
            answer = await self._ask(addr, body)
            if answer is TIMED_OUT:
                uncertain = getattr(req.ctx, "uncertain", None)
                if uncertain is not None:
                    uncertain(node_id)  # it may have been applied there (the simulator counts)
                if retryable(req.op, req.args):
                    continue
                raise Unavailable(
                    f"{req.op}: owner {node_id} of partition {partition} of {ns!r} did not "
                    f"answer within {self.config.request_timeout:g}s; the write may or may "
                    "not have been applied"
                )
            if observe and isinstance(answer, dict) and "w" in answer:
                _replay_observation(req, answer["w"])
            return result_of(answer)
        return await self._hint(req, nxt, partition, tried=len(others))

    async def _hint(self, req: Request, nxt: Next, partition: int, tried: int) -> Any:
        """No owner answered: keep the write here; the handoff takes it to the owners."""
        ns = req.args["ns"]
        w = self.services.store.namespace(ns).w
        result = await nxt(req)
        log.info(
            "event=write_hinted ns=%s partition=%d op=%s owners_tried=%d",
            ns,
            partition,
            req.op,
            tried,
        )
        if w > 1:
            raise Unavailable(
                f"{req.op}: no owner of partition {partition} of {ns!r} answered; the write "
                f"is kept here as a hint and will reach them, but not w={w} owners have it"
            )
        return {**result, "hinted": True} if isinstance(result, dict) else result

    async def commit_here(self, req: Request, nxt: Next, partition: int) -> Any:
        """Run a write on this node (an owner), then wait for w - 1 other owners' commits."""
        ns, key = req.args["ns"], req.args["key"]
        w = self.services.store.namespace(ns).w
        if w <= 1:
            return await nxt(req)
        committed: list[OpResult] = []
        req.ctx = Observing(req.ctx, committed.append)
        result = await nxt(req)
        deltas = [
            ch.delta
            for r in committed
            for ch in r.changes
            if ch.delta is not None and ch.key == key
        ]
        if not deltas:
            return result  # nothing changed: nothing to confirm
        payload = encode_entry(deltas[-1])
        others = self._others(ns, partition)
        confirmed = await self._confirm(others, replica_request(ns, key, payload), w - 1)
        if confirmed < w - 1:
            raise Unavailable(
                f"{req.op}: committed on {1 + confirmed} of w={w} owners of partition "
                f"{partition} of {ns!r}; it will still reach the others"
            )
        return result

    async def _confirm(self, owners: list[tuple[str, Any]], body: dict[str, Any], need: int) -> int:
        """Send the delta to the other owners; return once `need` confirmed (or all answered)."""
        if need <= 0:
            return 0
        pending = {asyncio.ensure_future(self._ask(addr, body)) for _, addr in owners}
        confirmed = 0
        while pending and confirmed < need:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                answer = task.result()
                if answer is not TIMED_OUT and isinstance(answer, dict) and "r" in answer:
                    confirmed += 1
        for task in pending:
            task.cancel()
        return confirmed

    # --- scatter-gather -------------------------------------------------------------------

    async def scatter(self, req: Request, nxt: Next) -> Any:
        ns = req.args["ns"]
        self._settled(ns)
        if req.op == "vsearch" and req.args.get("key") is not None:
            req = await self._by_vector(req, nxt)
        answers, missing = await self._gather(req, nxt, ns)
        partitions = self.placement.sharding(ns).partitions
        if req.op == "list":
            reply = gather.merge_list(req.args, answers)
        elif req.op == "search":
            reply = gather.merge_search(req.args, answers)
        elif req.op == "vsearch":
            if not answers:
                raise self._unreachable("vsearch", ns, missing[0])
            reply = gather.merge_vsearch(req.args, answers)
        elif req.op == "vsearch_many":
            if not answers:
                raise self._unreachable("vsearch_many", ns, missing[0])
            reply = gather.merge_vsearch_many(req.args, answers)
        else:
            info = self.services.store.catalog
            reply = gather.merge_ns_stats(info.namespace(ns).public(), answers, info.ns_stats(ns))
        return gather.with_missing(reply, missing, partitions)

    async def _by_vector(self, req: Request, nxt: Next) -> Request:
        """A vsearch near a key becomes a search by that key's vector, read from its owner."""
        ns, key = req.args["ns"], req.args["key"]
        get = Request(
            TABLE["get"],
            {"ns": ns, "key": key, "vector": True, "linearizable": False},
            req.ctx,
            notes={**req.notes},
        )
        # `nxt` continues vsearch's chain (each operation's chain is bound on its own), so
        # the get runs through get's executor.
        view = await self.read(get, self.service.executors["get"])
        vector = view.get("vector") if isinstance(view, dict) else None
        if vector is None:
            raise NotFound(f"vsearch: {key!r} in {ns!r} is not a live entry with a vector")
        args = {k: v for k, v in req.args.items() if k != "key"}
        args["vector"] = vector
        embedder = self.services.store.namespace(ns).embedder
        if embedder is not None:
            args["embedder"] = embedder
        return Request(req.spec, args, req.ctx, notes={**req.notes})

    async def _gather(
        self, req: Request, nxt: Next, ns: str
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Each partition's answer from one owner; a node that fails or is not ready for
        some partitions is replaced by the next candidate, once per partition."""
        me = self.host.node.node_id
        pmap = self.placement.map
        partitions = self.placement.sharding(ns).partitions
        excluded: dict[int, set[str]] = {p: set() for p in range(partitions)}
        todo = list(range(partitions))
        answers: list[dict[str, Any]] = []
        missing: list[int] = []
        for _attempt in range(3):
            live = self._live()
            candidates = {}
            for p in todo:
                nodes = [n for n, _ in self._others(ns, p, live) if n not in excluded[p]]
                if pmap.ready(ns, p) and me not in excluded[p]:
                    nodes.insert(0, me)
                candidates[p] = nodes
            load = self._load(live)
            chosen, lost = cover(candidates, local=me, load=load)
            missing.extend(lost)
            results = await self._scatter_round(req, nxt, chosen, live)
            todo = []
            for node, (answer, failed) in zip(chosen, results, strict=True):
                if answer is not None:
                    answers.append(answer)
                for p in failed:
                    excluded[p].add(node)
                    todo.append(p)
            if not todo:
                break
        missing.extend(todo)
        return answers, sorted(set(missing))

    def _load(self, live: dict[str, Any]) -> dict[str, int]:
        by_addr = self.host.node.calls.load()
        return {node_id: by_addr[addr] for node_id, addr in live.items() if addr in by_addr}

    async def _scatter_round(
        self, req: Request, nxt: Next, chosen: dict[str, list[int]], live: dict[str, Any]
    ) -> list[tuple[dict[str, Any] | None, list[int]]]:
        """Every node of the covering set's answer, in `chosen` order. The calls to other
        nodes leave before this node searches its own share (which runs on the loop and
        would otherwise hold them back), and all are awaited together: the round costs
        the slowest owner, not the sum."""
        me = self.host.node.node_id
        calls = {}
        for node, parts in chosen.items():
            addr = live.get(node)
            if node == me:
                continue
            if addr is None:
                calls[node] = _none(parts)
                continue
            body = op_request(req.op, req.args, parts, agent=req.notes.get("agent"))
            sent = self.host.start_call(addr, body, self.config.request_timeout)
            calls[node] = self._remote_part(sent, parts)
        local: tuple[dict[str, Any] | None, list[int]] = (None, [])
        if me in chosen:
            self.host.flush()
            try:
                local = await self._local_part(req, nxt, chosen[me])
            except BaseException:
                for waiting in calls.values():
                    waiting.close()
                raise
        answers = dict(zip(calls, await asyncio.gather(*calls.values()), strict=True))
        return [local if node == me else answers[node] for node in chosen]

    async def _local_part(
        self, req: Request, nxt: Next, parts: list[int]
    ) -> tuple[dict[str, Any] | None, list[int]]:
        sub = Request(req.spec, dict(req.args), req.ctx, notes={**req.notes})
        sub.notes["partitions"] = set(parts)
        sub.notes["remote"] = True
        try:
            return await nxt(sub), []
        except Unavailable:
            return None, parts

    async def _remote_part(
        self, sent: asyncio.Future[Any], parts: list[int]
    ) -> tuple[dict[str, Any] | None, list[int]]:
        """(answer, partitions it did not answer for) of a call already sent."""
        answered = await sent
        return _part_answer(answered.body, parts)

    # --- every namespace --------------------------------------------------------------------

    async def _all_namespaces(self, req: Request, nxt: Next) -> Any:
        """search and ns_stats without a namespace: this node for those held whole, a scatter
        for each sharded one the caller may read (`authorise` filters the answer too, but a
        scatter of a namespace it would hide is traffic for nothing)."""
        readable = req.notes.get("readable")
        sharded = sorted(
            ns for ns in self.placement.map.namespaces if readable is None or readable(ns)
        )
        if not sharded:
            return await nxt(req)
        local = Request(req.spec, dict(req.args), req.ctx, notes={**req.notes})
        local.notes["exclude_ns"] = frozenset(sharded)
        whole = await nxt(local)
        parts = []
        for ns in sharded:
            sub = Request(req.spec, {**req.args, "ns": ns}, req.ctx, notes={**req.notes})
            try:
                parts.append((ns, await self.scatter(sub, nxt)))
            except SwarmError as exc:
                log.info("event=scatter_failed op=%s ns=%s error=%s", req.op, ns, exc.message)
        if req.op == "ns_stats":
            namespaces = dict(whole["namespaces"])
            namespaces.update(parts)
            return {"namespaces": dict(sorted(namespaces.items()))}
        answers = [whole, *(reply for _, reply in parts)]
        reply = gather.merge_search(req.args, answers)
        missing = [f"{ns}" for ns, r in parts if r.get("partial")]
        if missing:
            reply["partial"] = True
            reply["partial_namespaces"] = missing
        return reply


def _replay_observation(req: Request, observed: Any) -> None:
    """Give a forwarded write's committed states to the caller's observer (the simulator's
    workload judges writes by them)."""
    observe = getattr(req.ctx, "observe", None)
    if observe is None or not isinstance(observed, list | tuple) or len(observed) != 2:
        return
    before, after = (decode_entry(x) if isinstance(x, bytes) else None for x in observed)
    change = Change(req.args["ns"], req.args["key"], req.op, "local", None, None, False, False)
    change.before, change.entry = before, after
    observe(OpResult(changes=[change]))


def _part_answer(answer: Any, parts: list[int]) -> tuple[dict[str, Any] | None, list[int]]:
    """(result, partitions not answered for) of one covering node's answer."""
    if answer is TIMED_OUT:
        return None, parts
    try:
        result = result_of(answer)
    except Unavailable:
        return None, parts
    return result, not_ready(answer)


async def _none(parts: list[int]) -> tuple[None, list[int]]:
    """The answer for a covering node that is no longer live: nothing, for every part."""
    return None, parts
