"""The node and its cluster: ping, members, sync, stats."""

from __future__ import annotations

from typing import Any

from swarmnode import __version__
from swarmnode.errors import NotFound, Unavailable
from swarmnode.sansio import Address
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import Request


class ClusterOps:
    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self.host = node.host

    def register(self, service: Service) -> None:
        service.register("ping", self.ping)
        service.register("members", self.members)
        service.register("sync", self.sync)
        service.register("stats", self.stats)

    async def ping(self, req: Request) -> Any:
        node = self.host.node
        return {
            "pong": True,
            "node_id": node.node_id,
            "version": __version__,
            "time_ms": self.node.wall_ms(),
            "address": f"{node.address[0]}:{node.address[1]}",
        }

    async def members(self, req: Request) -> Any:
        node = self.host.node
        now = node.now
        reply: dict[str, Any] = {
            "members": [
                {
                    "node_id": m.node_id,
                    "address": f"{m.addr[0]}:{m.addr[1]}",
                    "state": m.state.label,
                    "incarnation": m.incarnation,
                    "since_s": round(max(0.0, now - m.since), 3),
                    "self": m.node_id == node.node_id,
                }
                for m in node.membership.members()
            ]
        }
        placement = node.placement
        if placement.map.namespaces:
            # Sharded namespaces: partitions per member (this node's view) and moves in flight.
            owned = placement.member_partitions()
            for m in reply["members"]:
                m["partitions"] = owned.get(m["node_id"], 0)
            reply["moves"] = placement.handoff.progress(now)
            reply["filling"] = len(placement.map.filling)
        return reply

    async def sync(self, req: Request) -> Any:
        text = req.args.get("peer")
        peer = None if text is None or text == "all" else self._resolve_peer(text)
        report = await self.host.sync(peer)
        return report.as_dict()

    def _resolve_peer(self, text: str) -> Address:
        for m in self.host.node.membership.members():
            if text in (m.node_id, f"{m.addr[0]}:{m.addr[1]}"):
                if not m.state.live:
                    raise Unavailable(f"peer {text} is {m.state.label}")
                return m.addr
        raise NotFound(f"no member {text[:64]!r}; see the members operation")

    async def stats(self, req: Request) -> Any:
        return self.node.stats()
