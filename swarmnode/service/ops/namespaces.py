"""Namespaces: ns_init, ns_delete, ns_stats, ns_list."""

from __future__ import annotations

from typing import Any

from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices, agent_of
from swarmnode.service.table import Request
from swarmnode.storage.ops import DefineNs, DeleteNs


class NamespaceOps:
    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self.store = node.store

    def register(self, service: Service) -> None:
        service.register("ns_init", self.ns_init)
        service.register("ns_delete", self.ns_delete)
        service.register("ns_stats", self.ns_stats)
        service.register("ns_list", self.ns_list)

    async def ns_init(self, req: Request) -> Any:
        params = {k: v for k, v in req.args.items() if k != "ns"}
        result = await self.node.commit(req, DefineNs(req.args["ns"], params, agent=agent_of(req)))
        return result.value

    async def ns_delete(self, req: Request) -> Any:
        result = await self.node.commit(req, DeleteNs(req.args["ns"], agent=agent_of(req)))
        return result.value

    def info(self, ns: str) -> dict[str, Any]:
        catalog = self.store.catalog
        return {**catalog.namespace(ns).public(), **catalog.ns_stats(ns)}

    async def ns_stats(self, req: Request) -> Any:
        ns = req.args.get("ns")
        if ns is not None:
            return self.info(ns)
        return {"namespaces": {n: self.info(n) for n in self.store.namespace_names()}}

    async def ns_list(self, req: Request) -> Any:
        return {"namespaces": [self.info(n) for n in self.store.namespace_names()]}
