"""Reading and writing one entry: put, get, delete, expire, incr, sadd, srem, smembers."""

from __future__ import annotations

import asyncio
from typing import Any

from swarmnode.crdt.entry import SET
from swarmnode.errors import NotFound, WrongType
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices, agent_of
from swarmnode.service.ops.consensus import ConsensusOps
from swarmnode.service.table import Request
from swarmnode.storage.ops import Delete, Expire, Incr, Put, SAdd, SRem
from swarmnode.storage.views import entry_view


class EntryOps:
    def __init__(self, node: NodeServices, consensus: ConsensusOps) -> None:
        self.node = node
        self.store = node.store
        self.consensus = consensus

    def register(self, service: Service) -> None:
        for name in ("put", "get", "delete", "expire", "incr", "sadd", "srem", "smembers"):
            service.register(name, getattr(self, name))

    async def put(self, req: Request) -> Any:
        a = req.args
        op = Put(
            a["ns"],
            a["key"],
            a["value"],
            meta=a.get("meta"),
            vector=a.get("vector"),
            ttl=a.get("ttl"),
            if_absent=a["if_absent"],
            if_exists=a["if_exists"],
            keep_ttl=a["keep_ttl"],
            agent=agent_of(req),
        )
        result = await self.node.commit(req, op)
        return {"ns": op.ns, "key": op.key, **result.value}

    async def get(self, req: Request) -> Any:
        a = req.args
        ns, key = a["ns"], a["key"]
        if a["linearizable"]:
            return await self.consensus.read(ns, key)
        store = self.store
        now = self.node.wall_ms()
        with store.read() as txn:
            entry = store.get_header(ns, key, txn)
        if entry is not None and entry.orset is not None:
            # A set is read whole; a big one must not stall the event loop.
            # Anything else is whole already in its header.
            entry = await asyncio.to_thread(store.get, ns, key)
        view = None
        if entry is not None and entry.ts > store.catalog.namespace(ns).cleared_at:
            view = entry_view(ns, key, entry, now, with_vector=a["vector"])
        if view is None:
            raise NotFound(f"{key!r} not found in {ns!r}")
        return view

    async def delete(self, req: Request) -> Any:
        ns, key = req.args["ns"], req.args["key"]
        result = await self.node.commit(req, Delete(ns, key, agent=agent_of(req)))
        return {"ns": ns, "key": key, **result.value}

    async def expire(self, req: Request) -> Any:
        ns, key = req.args["ns"], req.args["key"]
        result = await self.node.commit(req, Expire(ns, key, req.args["ttl"], agent=agent_of(req)))
        return {"ns": ns, "key": key, **result.value}

    async def incr(self, req: Request) -> Any:
        a = req.args
        op = Incr(a["ns"], a["key"], a["by"], a.get("ttl"), agent=agent_of(req))
        result = await self.node.commit(req, op)
        return {"ns": a["ns"], "key": a["key"], **result.value}

    async def sadd(self, req: Request) -> Any:
        a = req.args
        op = SAdd(a["ns"], a["key"], a["members"], a.get("ttl"), agent=agent_of(req))
        result = await self.node.commit(req, op)
        return {"ns": a["ns"], "key": a["key"], **result.value}

    async def srem(self, req: Request) -> Any:
        a = req.args
        op = SRem(a["ns"], a["key"], a["members"], agent=agent_of(req))
        result = await self.node.commit(req, op)
        return {"ns": a["ns"], "key": a["key"], **result.value}

    async def smembers(self, req: Request) -> Any:
        ns, key = req.args["ns"], req.args["key"]
        now = self.node.wall_ms()
        entry = await asyncio.to_thread(self.store.get, ns, key)
        if entry is None or not self.store.live_entry(ns, entry, now):
            raise NotFound(f"{key!r} not found in {ns!r}")
        kinds = entry.live_kinds(now)
        if SET not in kinds:
            raise WrongType(f"{key!r} is a {kinds[0]}, not a set")
        return {"ns": ns, "key": key, "members": entry.orset.members()}
