"""What the consensus group settles for clients: cas, claims, linearizable reads.

Each becomes one command of the group's state machine (`consensus/machine.py`),
proposed through the node (`NodeHost.command`), and answers once this node's
own machine applied it: the result every replica computed. Without a quorum
the node answers `unavailable` within `consensus.command_timeout`; the
command may still take effect (its outcome is unknown, as with any timeout).
"""

from __future__ import annotations

from typing import Any

from swarmnode.consensus import machine
from swarmnode.errors import BadRequest, NotFound
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import Request


class ConsensusOps:
    def __init__(self, node: NodeServices) -> None:
        self.node = node
        self.host = node.host
        self.store = node.store

    def register(self, service: Service) -> None:
        for name in ("cas", "claim", "renew", "release"):
            service.register(name, getattr(self, name))

    def _consensus_ns(self, ns: str, op: str) -> None:
        if self.store.namespace(ns).policy != "consensus":
            raise BadRequest(
                f"{op}: namespace {ns!r} is not of policy consensus; create one with "
                "ns_init(policy='consensus') (the built-in 'decisions' is one)"
            )

    async def _command(self, command: bytes) -> dict[str, Any]:
        result = await self.host.command(command)
        if not result.get("ok", False) and result.get("error") == "bad_request":
            raise BadRequest(str(result.get("message", "refused by the state machine")))
        return result

    async def cas(self, req: Request) -> Any:
        a = req.args
        ns, key = a["ns"], a["key"]
        self._consensus_ns(ns, "cas")
        expected = a.get("expected", machine.ABSENT)
        r = await self._command(machine.cas(ns, key, expected, a["value"]))
        return {"ns": ns, "key": key, "ok": r["ok"], "exists": r["exists"], "value": r.get("value")}

    async def claim(self, req: Request) -> Any:
        a = req.args
        ns, key, owner = a["ns"], a["key"], a["owner"]
        r = await self._command(machine.claim(ns, key, owner, _lease_ms(a["lease"])))
        return {
            "ns": ns,
            "key": key,
            "granted": r["ok"],
            "owner": r.get("owner"),
            "token": r.get("token"),
            "lease": r.get("lease_ms", 0) / 1000 if r["ok"] else None,
        }

    async def renew(self, req: Request) -> Any:
        a = req.args
        command = machine.renew(a["ns"], a["key"], a["owner"], a["token"], _lease_ms(a["lease"]))
        r = await self._command(command)
        return {"ns": a["ns"], "key": a["key"], "renewed": r["ok"]}

    async def release(self, req: Request) -> Any:
        a = req.args
        r = await self._command(machine.release(a["ns"], a["key"], a["owner"], a["token"]))
        return {"ns": a["ns"], "key": a["key"], "released": r["ok"]}

    async def read(self, ns: str, key: str) -> dict[str, Any]:
        """`get {linearizable: true}`: the group's register, read through the leader."""
        self._consensus_ns(ns, "get")
        value = await self.host.read_linearizable(ns, key)
        if value is machine.ABSENT:
            raise NotFound(f"{key!r} has no linearizable value in {ns!r} (cas sets one)")
        return {"ns": ns, "key": key, "type": "register", "value": value, "linearizable": True}


def _lease_ms(seconds: float) -> int:
    ms = int(seconds * 1000)
    if not 0 < ms <= machine.MAX_LEASE_MS:
        raise BadRequest(f"lease must be between 0.001 and {machine.MAX_LEASE_MS // 1000} seconds")
    return ms
