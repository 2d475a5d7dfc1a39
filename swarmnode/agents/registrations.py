"""Agent registrations as data: records in the reserved namespace `_agents`, and the
in-memory roster a node keeps of them.

A registration replicates like any entry (LWW registers gossiped and repaired
by anti-entropy), so an agent that moves to another host keeps its identity
there. Three kinds of record, so that no write can undo another made
concurrently elsewhere:

    reg:<agent>                 what `agent_register` recorded: roles, namespaces,
                                quota, lease, and the token's id, salt and hash
    lease:<agent>               the end of the lease as `agent_renew` last set it
    revoked:<agent>:<token id>  written once by `agent_revoke`, never changed

A re-registration issues a new token id, so it neither revives a revoked
token nor is undone by a renewal made meanwhile with the old one; a
revocation is a record of its own, so no later renewal can lift it.

The `Roster` is the node's view of these records, rebuilt from the store at
start and kept current from the node's committed changes (local writes and
replicated ones alike), so checking a request costs one dictionary lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from swarmnode.agents.tokens import TokenHash
from swarmnode.errors import BadRequest

AGENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,57}$")
"""An agent id: short enough that `agent:<id>` is a namespace name."""
NS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
ROLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
MODES = ("read", "write")
ADMIN_ROLE = "admin"
"""An agent with this role may do what the socket's owner may."""
PRIVATE_PREFIX = "agent:"
"""`agent:<id>`: a namespace private to that agent."""
MAX_NAMESPACES = 256
MAX_ROLES = 32


@dataclass(frozen=True)
class Quota:
    """Limits of what an agent's live entries may cost; None: no limit."""

    bytes: int | None = None
    entries: int | None = None
    vectors: int | None = None

    def to_value(self) -> dict[str, int | None]:
        return {"bytes": self.bytes, "entries": self.entries, "vectors": self.vectors}

    @classmethod
    def parse(cls, raw: Any) -> Quota:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise BadRequest("quota must be a map of bytes, entries and vectors")
        unknown = set(raw) - {"bytes", "entries", "vectors"}
        if unknown:
            raise BadRequest(f"quota takes bytes, entries and vectors, not {sorted(unknown)}")
        limits = {}
        for name in ("bytes", "entries", "vectors"):
            value = raw.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise BadRequest(f"quota {name} must be a non-negative integer")
            limits[name] = value
        return cls(**limits)


@dataclass(frozen=True)
class Registration:
    """One agent as the roster knows it."""

    agent: str
    roles: tuple[str, ...]
    namespaces: Mapping[str, str]
    """Namespace name (or a prefix ending in `*`) -> "read" or "write" (write includes read)."""
    quota: Quota
    lease_s: float
    token: TokenHash
    registered_ms: int
    expires_ms: int
    revoked: bool = False

    def state(self, now_ms: int) -> str:
        if self.revoked:
            return "revoked"
        return "active" if now_ms < self.expires_ms else "expired"

    def grant(self, ns: str) -> str | None:
        """The mode this registration grants on `ns`: exact names first, then prefixes."""
        found = self.namespaces.get(ns)
        if found is not None or not self._prefixes:
            return found
        best = None
        for prefix, mode in self._prefixes:
            if ns.startswith(prefix):
                best = mode if best is None or mode == "write" else best
        return best

    @cached_property
    def _prefixes(self) -> tuple[tuple[str, str], ...]:
        return tuple((n[:-1], m) for n, m in self.namespaces.items() if n.endswith("*"))

    def public(self, now_ms: int) -> dict[str, Any]:
        """What `agent_list` shows: everything but the token's salt and hash."""
        return {
            "agent": self.agent,
            "roles": list(self.roles),
            "namespaces": dict(self.namespaces),
            "quota": self.quota.to_value(),
            "lease_s": self.lease_s,
            "registered_ms": self.registered_ms,
            "expires_ms": self.expires_ms,
            "token_id": self.token.token_id,
            "state": self.state(now_ms),
        }


def check_agent_id(agent: Any) -> str:
    if not isinstance(agent, str) or not AGENT_RE.match(agent):
        raise BadRequest(
            "agent must be 1-58 letters, digits, _ or - starting with a letter or digit"
        )
    return agent


def check_roles(roles: Any) -> tuple[str, ...]:
    if roles is None:
        return ()
    roles = [roles] if isinstance(roles, str) else roles
    if not isinstance(roles, list) or len(roles) > MAX_ROLES:
        raise BadRequest(f"roles must be a list of at most {MAX_ROLES} names")
    for role in roles:
        if not isinstance(role, str) or not ROLE_RE.match(role):
            raise BadRequest("a role is 1-32 letters, digits, _ or -")
    return tuple(sorted(set(roles)))


def check_namespaces(raw: Any) -> dict[str, str]:
    """`{ns: "read"|"write"}`, or a list of names (each granted write)."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        raw = dict.fromkeys(raw, "write")
    if not isinstance(raw, dict) or len(raw) > MAX_NAMESPACES:
        raise BadRequest(f"namespaces must map at most {MAX_NAMESPACES} names to read or write")
    out = {}
    for name, mode in raw.items():
        bare = name[:-1] if isinstance(name, str) and name.endswith("*") else name
        if not isinstance(name, str) or not (
            bare == "" or re.match(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", bare)
        ):
            raise BadRequest(f"namespaces: {str(name)[:64]!r} is not a namespace name or prefix*")
        if mode not in MODES:
            raise BadRequest(f"namespaces: the mode of {name!r} must be read or write")
        out[name] = mode
    return dict(sorted(out.items()))


# --- records in `_agents` -------------------------------------------------------------


def reg_key(agent: str) -> str:
    return f"reg:{agent}"


def lease_key(agent: str) -> str:
    return f"lease:{agent}"


def revoked_key(agent: str, token_id: str) -> str:
    return f"revoked:{agent}:{token_id}"


def registration_value(
    roles: tuple[str, ...],
    namespaces: dict[str, str],
    quota: Quota,
    lease_s: float,
    token: TokenHash,
    registered_ms: int,
) -> dict[str, Any]:
    return {
        "roles": list(roles),
        "namespaces": namespaces,
        "quota": quota.to_value(),
        "lease_s": lease_s,
        "token": token.to_value(),
        "registered_ms": registered_ms,
        "expires_ms": registered_ms + int(lease_s * 1000),
    }


_MISSING = object()


@dataclass
class _Records:
    reg: dict[str, Any] | None = None
    lease_ms: int = 0
    revoked: set[str] = field(default_factory=set)


class Roster:
    """The node's view of every registration, kept current from committed changes."""

    def __init__(self) -> None:
        self._records: dict[str, _Records] = {}
        self._built: dict[str, Registration | None] = {}

    def load(self, items: Iterable[tuple[str, Any]]) -> None:
        """(key, live value or None) of every record in `_agents`."""
        for key, value in items:
            self.apply(key, value)

    def apply(self, key: str, value: Any) -> None:
        """A record changed: its new live value, or None when it is gone."""
        kind, _, rest = key.partition(":")
        if kind == "revoked":
            agent, _, token_id = rest.partition(":")
            records = self._records.setdefault(agent, _Records())
            if value is not None:
                records.revoked.add(token_id)
        elif kind == "reg":
            agent = rest
            records = self._records.setdefault(agent, _Records())
            records.reg = value if isinstance(value, dict) else None
        elif kind == "lease":
            agent = rest
            records = self._records.setdefault(agent, _Records())
            expires = value.get("expires_ms") if isinstance(value, dict) else None
            records.lease_ms = expires if isinstance(expires, int) else 0
        else:
            return
        self._built.pop(agent, None)

    def get(self, agent: str) -> Registration | None:
        found = self._built.get(agent, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        records = self._records.get(agent)
        built = _build(agent, records) if records is not None else None
        self._built[agent] = built
        return built

    def agents(self) -> list[str]:
        return sorted(a for a in self._records if self.get(a) is not None)


def _build(agent: str, records: _Records) -> Registration | None:
    reg = records.reg
    if reg is None:
        return None
    try:
        token = reg["token"]
        stored = TokenHash(token["id"], token["salt"], token["hash"])
        return Registration(
            agent=agent,
            roles=tuple(reg.get("roles") or ()),
            namespaces=dict(reg.get("namespaces") or {}),
            quota=Quota.parse(reg.get("quota")),
            lease_s=float(reg["lease_s"]),
            token=stored,
            registered_ms=int(reg["registered_ms"]),
            expires_ms=max(int(reg["expires_ms"]), records.lease_ms),
            revoked=stored.token_id in records.revoked,
        )
    except (KeyError, TypeError, ValueError, BadRequest):
        return None
