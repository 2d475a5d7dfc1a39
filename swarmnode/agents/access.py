"""Who may do what to a namespace: pure decisions, no IO.

A principal is the administrator (the socket's owner without a token, or an
agent with the `admin` role), an agent (its id, roles and the namespaces its
registration grants), or nobody yet (a connection that must present a token
first: only `ping` and `hello`).

An agent may read a namespace when any of these holds:
- it is the namespace's owner (`agent:<id>` is always owned by `<id>`);
- its registration grants it read or write on the namespace (exact name or
  a `prefix*`);
- the namespace's `readers` name it, one of its roles (`role:<name>`) or
  everyone (`*`); a namespace whose `readers` were never set is open, except
  `agent:<id>` namespaces, which are private unless their readers say otherwise.
Writing is the same with `writers` and a `write` grant. Changing or deleting a
namespace's definition is for its owner (and the administrator); any agent
may create a namespace nobody defined, and owns it then; the built-in
namespaces are the administrator's to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmnode.agents.registrations import ADMIN_ROLE, PRIVATE_PREFIX, Registration
from swarmnode.storage.namespaces import NamespaceDef, reserved

EVERYONE = "*"
ROLE_PREFIX = "role:"


@dataclass(frozen=True)
class Principal:
    kind: str
    """"admin", "agent" or "nobody"."""
    agent: str | None = None
    roles: tuple[str, ...] = ()
    registration: Registration | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @classmethod
    def of(cls, registration: Registration) -> Principal:
        kind = "admin" if ADMIN_ROLE in registration.roles else "agent"
        return cls(kind, registration.agent, registration.roles, registration)


ADMIN = Principal("admin")
NOBODY = Principal("nobody")


def private_owner(ns: str) -> str | None:
    return ns[len(PRIVATE_PREFIX) :] if ns.startswith(PRIVATE_PREFIX) else None


def owner_of(ns: str, definition: NamespaceDef) -> str | None:
    return private_owner(ns) or definition.owner


def _listed(who: Principal, names: tuple[str, ...]) -> bool:
    return any(
        n == EVERYONE
        or n == who.agent
        or (n.startswith(ROLE_PREFIX) and n[len(ROLE_PREFIX) :] in who.roles)
        for n in names
    )


def _allowed(
    who: Principal,
    ns: str,
    definition: NamespaceDef,
    listed: tuple[str, ...] | None,
    modes: tuple[str, ...],
) -> bool:
    if who.is_admin:
        return True
    if who.kind != "agent" or reserved(ns):
        return False
    if owner_of(ns, definition) == who.agent:
        return True
    if who.registration is not None and who.registration.grant(ns) in modes:
        return True
    if listed is None:
        return private_owner(ns) is None
    return _listed(who, listed)


def can_read(who: Principal, ns: str, definition: NamespaceDef) -> bool:
    return _allowed(who, ns, definition, definition.readers, ("read", "write"))


def can_write(who: Principal, ns: str, definition: NamespaceDef) -> bool:
    return _allowed(who, ns, definition, definition.writers, ("write",))


def can_define(who: Principal, ns: str, definition: NamespaceDef, exists: bool) -> bool:
    """May `who` create (when it does not exist), change or delete this namespace?"""
    if who.is_admin:
        return True
    if who.kind != "agent" or reserved(ns):
        return False
    owner = owner_of(ns, definition)
    if owner is not None:
        return owner == who.agent
    return not exists and not definition.builtin
