"""Namespaces: a name and a policy (default TTL, conflict policy, vector settings).

Definitions are stored as LWW registers in the reserved namespace `_ns`, so
they replicate exactly like data. A namespace nobody defined behaves as the
default policy (no TTL, last-writer-wins); the built-in namespaces have the
defaults agents' swarms expect.

Deleting a namespace writes a definition marked deleted with `cleared_at`, the
HLC timestamp of the delete: every entry of that namespace last written at or
before it is gone, on every replica, without a tombstone per key.

Access (`owner`, `readers`, `writers`; see `agents/access.py`) and archiving
(`archive_after`, `archive_expired`; see `archive/`) are part of the
definition too. They are written only when set, so a definition made before
they existed keeps its exact bytes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from swarmnode.errors import BadRequest

SYSTEM_NS = "_ns"
AGENTS_NS = "_agents"
"""Agent registrations (`agents/registrations.py`): LWW registers, one per agent."""
RESERVED = frozenset({SYSTEM_NS, AGENTS_NS})
"""Namespaces the node keeps for itself; a client cannot name one (names start with a
letter or digit) and no listing shows one."""
POLICIES = ("lww", "mv", "consensus")
METRICS = ("cosine", "l2", "ip")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_TTL_S = 10 * 365 * 24 * 3600

HOUR = 3600


@dataclass(frozen=True)
class NamespaceDef:
    name: str
    ttl: float | None = None  # seconds; None = entries never expire by default
    policy: str = "lww"
    dim: int | None = None
    metric: str = "cosine"
    embedder: str | None = None
    cleared_at: int = 0  # HLC ts of the last ns_delete; older entries are gone
    deleted: bool = False
    builtin: bool = field(default=False, compare=False)
    owner: str | None = None
    """The agent that may change or delete the definition (None: the administrator)."""
    readers: tuple[str, ...] | None = None
    """Who may read: agent ids, `role:<name>`, `*`; None: everyone (agent:<id>: its owner)."""
    writers: tuple[str, ...] | None = None
    """Who may write, in the same form as `readers`."""
    archive_after: float | None = None
    """Seconds after which an entry neither written nor read here is archived (None: never)."""
    archive_expired: bool = False
    """Keep a copy of every entry that expires in the archive."""

    def to_value(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        d.pop("builtin")
        for k, default in _OPTIONAL.items():
            if d[k] == default:
                del d[k]
            elif isinstance(d[k], tuple):
                d[k] = list(d[k])
        return {k: d[k] for k in sorted(d)}

    @classmethod
    def from_value(cls, name: str, value: Any) -> NamespaceDef:
        base = BUILTINS.get(name, NamespaceDef(name))
        if not isinstance(value, dict):
            return base
        known = {k: value[k] for k in value if k in _FIELDS}
        for k in ("readers", "writers"):
            if isinstance(known.get(k), list):
                known[k] = tuple(known[k])
        try:
            return replace(base, **known)
        except TypeError:
            return base

    def public(self) -> dict[str, Any]:
        d = self.to_value()
        d["name"] = self.name
        d["builtin"] = self.builtin
        d.pop("deleted")
        return d


_OPTIONAL: dict[str, Any] = {
    "owner": None,
    "readers": None,
    "writers": None,
    "archive_after": None,
    "archive_expired": False,
}
"""Fields written only when they differ from these defaults."""
_FIELDS = {"ttl", "policy", "dim", "metric", "embedder", "cleared_at", "deleted", *_OPTIONAL}
PRINCIPAL_RE = re.compile(
    r"^(\*|role:[A-Za-z0-9][A-Za-z0-9_-]{0,31}|[A-Za-z0-9][A-Za-z0-9_-]{0,57})$"
)
"""An entry of `readers` or `writers`: `*`, `role:<name>`, or an agent id."""
MAX_PRINCIPALS = 256

BUILTINS: dict[str, NamespaceDef] = {
    d.name: d
    for d in (
        NamespaceDef("default", builtin=True),
        NamespaceDef("swarm", ttl=24 * HOUR, builtin=True),
        NamespaceDef("agents", ttl=1 * HOUR, builtin=True),
        NamespaceDef("tasks", ttl=4 * HOUR, builtin=True),
        NamespaceDef("patterns", ttl=7 * 24 * HOUR, builtin=True),
        NamespaceDef("decisions", ttl=30 * 24 * HOUR, policy="consensus", builtin=True),
        NamespaceDef("notifications", ttl=5 * 60, builtin=True),
    )
}


def reserved(name: str) -> bool:
    return name in RESERVED


def check_ns_name(name: Any, *, allow_system: bool = False) -> str:
    """A valid namespace name; `allow_system` admits the reserved ones too."""
    if not isinstance(name, str):
        raise BadRequest("ns must be a string")
    if allow_system and name in RESERVED:
        return name
    if not NAME_RE.match(name):
        raise BadRequest(
            f"invalid namespace {name!r}: 1-64 characters of letters, digits and _.:- "
            "starting with a letter or digit"
        )
    return name


def check_ttl(ttl: Any) -> float | None:
    """None keeps the namespace default; 0 means never expire; otherwise seconds."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise BadRequest("ttl must be a number of seconds")
    if ttl != ttl or ttl < 0 or ttl > MAX_TTL_S:
        raise BadRequest(f"ttl must be between 0 and {MAX_TTL_S} seconds (0 = never expire)")
    return float(ttl)


def make_definition(name: str, args: dict[str, Any], current: NamespaceDef) -> NamespaceDef:
    """The definition `ns_init` asks for, validated, on top of the current one."""
    changes: dict[str, Any] = {"deleted": False}
    if "ttl" in args and args["ttl"] is not None:
        ttl = check_ttl(args["ttl"])
        changes["ttl"] = None if ttl == 0 else ttl
    if args.get("policy") is not None:
        if args["policy"] not in POLICIES:
            raise BadRequest(f"policy must be one of {', '.join(POLICIES)}")
        changes["policy"] = args["policy"]
    if args.get("dim") is not None:
        dim = args["dim"]
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 4096:
            raise BadRequest("dim must be an integer between 1 and 4096")
        changes["dim"] = dim
    if args.get("metric") is not None:
        if args["metric"] not in METRICS:
            raise BadRequest(f"metric must be one of {', '.join(METRICS)}")
        changes["metric"] = args["metric"]
    if args.get("embedder") is not None:
        if not isinstance(args["embedder"], str) or not args["embedder"]:
            raise BadRequest("embedder must be a non-empty string")
        changes["embedder"] = args["embedder"]
    for who in ("readers", "writers"):
        if args.get(who) is not None:
            changes[who] = check_principals(who, args[who])
    if args.get("owner") is not None:
        if not isinstance(args["owner"], str) or not PRINCIPAL_RE.match(args["owner"]):
            raise BadRequest("owner must be an agent id")
        changes["owner"] = args["owner"]
    if args.get("archive_after") is not None:
        after = check_ttl(args["archive_after"])
        changes["archive_after"] = after or None
    if args.get("archive_expired") is not None:
        if not isinstance(args["archive_expired"], bool):
            raise BadRequest("archive_expired must be true or false")
        changes["archive_expired"] = args["archive_expired"]
    return replace(current, name=name, **changes)


def check_principals(what: str, names: Any) -> tuple[str, ...]:
    """`readers` or `writers`: agent ids, `role:<name>` or `*` (a string is one name)."""
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list | tuple) or len(names) > MAX_PRINCIPALS:
        raise BadRequest(f"{what} must be a list of at most {MAX_PRINCIPALS} names")
    for n in names:
        if not isinstance(n, str) or not PRINCIPAL_RE.match(n):
            raise BadRequest(f"{what}: {str(n)[:64]!r} is not an agent id, role:<name> or *")
    return tuple(sorted(set(names)))
