"""Running requests peers forwarded here (this node owns what they ask for).

The calling node has validated, authorised and embedded the request; here it
is checked again against this node's operation table (a peer's bytes are
input like any other) and run by the operation's executor, with the agent it
speaks for. A keyed read of a partition this node is still receiving, or the
partitions of a scatter it does not hold complete yet, are answered `n` so
the caller asks another owner. A write runs through the `route` step's
`commit_here`, so `w` is honoured whichever owner runs it, after `admit`
(the agent's quota, checked again against what this owner holds). A `replica`
request commits a delta another owner made and answers once it is durable.
The feeds of remote watches (`wsub`, `wpoll`, `wstop`) go to `feeds`.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from swarmnode.crdt.codec import decode_entry, encode_entry
from swarmnode.errors import BadRequest, DecodeError, InternalError, SwarmError
from swarmnode.routing.feeds import FEED_KINDS, WatchFeeds
from swarmnode.routing.route import KEYED_READS, KEYED_WRITES, Route
from swarmnode.routing.rpc import IncomingCall
from swarmnode.routing.wire import FORWARDED, error_answer
from swarmnode.service.args import check_args
from swarmnode.service.chain import Service, Step
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import TABLE, Request
from swarmnode.storage.ops import Merge, OpResult

log = logging.getLogger("swarmnode.routing")


class _Forwarded:
    """The context of a forwarded request: what it may observe of its own commit."""

    def __init__(self, observe: bool) -> None:
        self.committed: list[OpResult] = []
        if observe:
            self.observe = self.committed.append


class RemoteRequests:
    """The host's call handler: one task per forwarded request."""

    def __init__(
        self,
        services: NodeServices,
        service: Service,
        route: Route,
        feeds: WatchFeeds,
        admit: Step | None = None,
    ) -> None:
        self.services = services
        self.service = service
        self.route = route
        self.feeds = feeds
        self.admit = admit
        """Checks a forwarded write before this owner runs it (the agent's quota here)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, call: IncomingCall) -> None:
        task = asyncio.get_running_loop().create_task(self._run(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, call: IncomingCall) -> None:
        try:
            answer = await self._dispatch(call.body)
        except SwarmError as exc:
            answer = error_answer(exc)
        except DecodeError as exc:
            answer = error_answer(BadRequest(f"malformed forwarded request: {exc}"))
        except Exception as exc:
            log.exception("event=forwarded_request_failed")
            answer = error_answer(InternalError(f"forwarded request failed: {exc!r}"))
        self.services.host.answer(call, answer)

    async def _dispatch(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise DecodeError("a forwarded request is a map")
        kind = body.get("k")
        if kind == "replica":
            return await self._replica(body)
        if kind in FEED_KINDS:
            return await self.feeds.handle(body)
        if kind != "op":
            raise DecodeError(f"unknown forwarded request kind {kind!r}")
        op = body.get("op")
        if op not in FORWARDED or op not in self.service.executors:
            raise BadRequest(f"operation {op!r} is not run for peers")
        spec = TABLE[op]
        args = check_args(spec, body.get("a"), self.services.store.catalog)
        ctx = _Forwarded(bool(body.get("o")))
        req = Request(spec, args, ctx, notes={"remote": True})
        if isinstance(body.get("g"), str):
            req.notes["agent"] = body["g"]
        placement = self.services.host.node.placement
        ns = args.get("ns")
        sharding = placement.sharding(ns) if isinstance(ns, str) else None
        answer: dict[str, Any] = {}
        parts = body.get("p")
        if sharding is not None and op in KEYED_READS:
            partition = placement.map.partition_of(ns, args["key"])
            if not placement.map.ready(ns, partition):
                return {"n": [partition]}
        if sharding is not None and isinstance(parts, list):
            wanted = {p for p in parts if isinstance(p, int) and 0 <= p < sharding.partitions}
            held = {p for p in wanted if placement.map.ready(ns, p)}
            req.notes["partitions"] = held
            if wanted - held:
                answer["n"] = sorted(wanted - held)
        executor = self.service.executors[op]
        if sharding is not None and op in KEYED_WRITES:
            partition = placement.map.partition_of(ns, args["key"])
            if self.admit is not None:
                executor = partial(self.admit, nxt=executor)
            result = await self.route.commit_here(req, executor, partition)
        else:
            result = await executor(req)
        answer["r"] = result
        if ctx.committed:
            answer["w"] = _observed(ctx.committed[-1], args.get("key"))
        return answer

    async def _replica(self, body: dict[str, Any]) -> dict[str, Any]:
        ns, key, delta = body.get("ns"), body.get("key"), body.get("d")
        if not isinstance(ns, str) or not isinstance(key, str) or not isinstance(delta, bytes):
            raise DecodeError("a replica request names ns, key and a delta")
        await self.services.commit(None, Merge(ns, key, decode_entry(delta), full=False))
        return {"r": True}


def _observed(result: OpResult, key: Any) -> list[bytes | None]:
    """The entry just before and just after a write, encoded, for the caller's observer."""
    for change in reversed(result.changes):
        if change.key == key and change.origin == "local":
            return [
                encode_entry(change.before) if change.before is not None else None,
                encode_entry(change.entry) if change.entry is not None else None,
            ]
    return [None, None]
