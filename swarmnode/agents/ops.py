"""The agent operations: hello, agent_register, agent_renew, agent_revoke, agent_list.

Registrations are ordinary LWW writes into the reserved namespace `_agents`
(`registrations.py` says which records and why), so they replicate and are
repaired like any data. Who may call what is the `authorise` step's job:
registering is the administrator's, renewing and revoking an agent's own or
the administrator's, and an agent lists only itself.
"""

from __future__ import annotations

from typing import Any

from swarmnode.agents import tokens
from swarmnode.agents.access import Principal
from swarmnode.agents.config import AgentsConfig
from swarmnode.agents.registrations import (
    Quota,
    Registration,
    Roster,
    check_agent_id,
    check_namespaces,
    check_roles,
    lease_key,
    reg_key,
    registration_value,
    revoked_key,
)
from swarmnode.crdt.entry import Entry
from swarmnode.errors import BadRequest, Forbidden, NotFound
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.table import Request
from swarmnode.storage.namespaces import AGENTS_NS
from swarmnode.storage.ops import Change, Put


class AgentOps:
    def __init__(self, node: NodeServices, roster: Roster, config: AgentsConfig) -> None:
        self.node = node
        self.roster = roster
        self.config = config
        self._load()
        node.host.add_listener(self._on_change)

    def register(self, service: Service) -> None:
        for name in ("hello", "agent_register", "agent_renew", "agent_revoke", "agent_list"):
            service.register(name, getattr(self, name))

    # --- the roster follows the store ------------------------------------------------

    def _load(self) -> None:
        now = self.node.wall_ms()
        store = self.node.store
        with store.read() as txn:
            items = [(key, _live_value(entry, now)) for key, entry in store.scan(AGENTS_NS, txn)]
        self.roster.load(items)

    def _on_change(self, ch: Change) -> None:
        if ch.ns == AGENTS_NS:
            value = _live_value(ch.entry, self.node.wall_ms()) if ch.visible_after else None
            self.roster.apply(ch.key, value)

    async def _write(self, key: str, value: dict[str, Any], agent: str | None) -> None:
        await self.node.commit(None, Put(AGENTS_NS, key, value, agent=agent))
        self.roster.apply(key, value)

    # --- operations ------------------------------------------------------------------

    async def hello(self, req: Request) -> Any:
        session = getattr(req.ctx, "session", None)
        token = req.args.get("token")
        if token is None:
            who: Principal = req.notes["principal"]
            return {
                "agent": who.agent,
                "admin": who.is_admin,
                "authenticated": who.kind != "nobody",
            }
        if session is None:
            raise BadRequest("hello: this front end has no connection session")
        presented = tokens.parse(token)
        reg = self.roster.get(presented.agent) if presented is not None else None
        if presented is None or reg is None or not tokens.matches(presented, reg.token):
            raise Forbidden("hello: invalid token")
        state = reg.state(self.node.wall_ms())
        if state != "active":
            raise Forbidden(f"hello: the token of agent {reg.agent!r} is {state}")
        session.agent = reg.agent
        session.token_id = reg.token.token_id
        return self._describe(reg)

    async def agent_register(self, req: Request) -> Any:
        a = req.args
        agent = check_agent_id(a["agent"])
        lease = self._lease(a.get("lease"))
        token, stored = tokens.issue(agent)
        now = self.node.wall_ms()
        value = registration_value(
            check_roles(a.get("roles")),
            check_namespaces(a.get("namespaces")),
            Quota.parse(a.get("quota")),
            lease,
            stored,
            now,
        )
        await self._write(reg_key(agent), value, req.notes.get("agent"))
        reg = self.roster.get(agent)
        assert reg is not None
        return {**self._describe(reg), "token": token}

    async def agent_renew(self, req: Request) -> Any:
        reg = self._registered(req)
        if reg.state(self.node.wall_ms()) == "revoked":
            raise Forbidden(f"agent {reg.agent!r} was revoked; register it again")
        lease = self._lease(req.args.get("lease") or reg.lease_s)
        expires_ms = self.node.wall_ms() + int(lease * 1000)
        await self._write(lease_key(reg.agent), {"expires_ms": expires_ms}, req.notes.get("agent"))
        return {"agent": reg.agent, "expires_ms": expires_ms}

    async def agent_revoke(self, req: Request) -> Any:
        reg = self._registered(req)
        key = revoked_key(reg.agent, reg.token.token_id)
        await self._write(key, {"revoked_ms": self.node.wall_ms()}, req.notes.get("agent"))
        return {"agent": reg.agent, "token_id": reg.token.token_id, "revoked": True}

    async def agent_list(self, req: Request) -> Any:
        who: Principal = req.notes["principal"]
        wanted = req.args.get("agent")
        if not who.is_admin:
            if wanted not in (None, who.agent):
                raise Forbidden("agent_list: an agent may only list itself")
            wanted = who.agent
        names = [wanted] if wanted is not None else self.roster.agents()
        regs = [r for r in (self.roster.get(n) for n in names) if r is not None]
        if wanted is not None and not regs:
            raise NotFound(f"agent {wanted!r} is not registered")
        return {"agents": [self._describe(r) for r in regs]}

    # --- helpers -----------------------------------------------------------------------

    def _registered(self, req: Request) -> Registration:
        agent = req.args.get("agent") or req.notes.get("agent")
        if agent is None:
            raise BadRequest(f"{req.op}: name the agent")
        reg = self.roster.get(check_agent_id(agent))
        if reg is None:
            raise NotFound(f"agent {agent!r} is not registered")
        return reg

    def _lease(self, lease: Any) -> float:
        if lease is None:
            return self.config.default_lease
        if not 1 <= lease <= self.config.max_lease:
            raise BadRequest(f"lease must be between 1 and {self.config.max_lease:g} seconds")
        return float(lease)

    def _describe(self, reg: Registration) -> dict[str, Any]:
        usage = self.node.store.catalog.usage_of(reg.agent)
        return {
            **reg.public(self.node.wall_ms()),
            "usage": {"bytes": usage[0], "entries": usage[1], "vectors": usage[2]},
        }


def _live_value(entry: Entry | None, now_ms: int) -> Any:
    if entry is None or entry.reg is None or not entry.reg.visible(now_ms):
        return None
    return entry.reg.value
