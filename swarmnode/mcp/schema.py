"""The memory tools as agents see them: names, descriptions and JSON input schemas.

Each tool's schema is also what its arguments are checked against before any
node operation runs, so what an agent reads in `tools/list` and what the
bridge accepts cannot drift apart. The checks cover the part of JSON Schema
used here (type, enum, minimum, maximum, minLength, array items, required,
no unknown properties) and fail with a message that names the argument and
says what was expected, because an agent corrects its call from that text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from swarmnode.errors import BadRequest
from swarmnode.service.table import TABLE, Arg
from swarmnode.storage.namespaces import BUILTINS

DEFAULT_NAMESPACE = "default"
MAX_RESULTS = 1000


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


_BUILTIN_TEXT = ", ".join(
    f"{d.name} (TTL {_duration(d.ttl)})" if d.ttl else f"{d.name} (no TTL)"
    for d in BUILTINS.values()
)


def _prop(kind: str | None, description: str, **more: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"description": description, **more}
    if kind is not None:
        p["type"] = kind
    return p


ORIGINS: dict[int, tuple[str, str]] = {}
"""id(property schema) -> (operation, argument) of the node operation it is passed to."""


def op_schema(arg: Arg) -> dict[str, Any]:
    """The JSON schema of what a node operation's argument accepts (as agents send JSON)."""
    kind = arg.kind
    if kind in ("ns", "key"):
        out: dict[str, Any] = {"type": "string", "minLength": 1}
        if kind == "ns":
            out["maxLength"] = 64
        return out
    if kind in ("str", "enum"):
        out = {"type": "string"}
        if arg.choices:
            out["enum"] = list(arg.choices)
        if arg.max_len is not None:
            out["maxLength"] = arg.max_len
        return out
    if kind in ("int", "number"):
        out = {"type": "integer" if kind == "int" else "number"}
        if arg.lo is not None:
            out["minimum"] = int(arg.lo) if kind == "int" else arg.lo
        if arg.hi is not None:
            out["maximum"] = int(arg.hi) if kind == "int" else arg.hi
        return out
    if kind == "ttl":
        return {"type": "number", "minimum": 0}
    simple = {"bool": "boolean", "map": "object"}
    if kind in simple:
        return {"type": simple[kind]}
    if kind == "vector":
        return {"type": "array", "items": {"type": "number"}}
    if kind == "vectors":
        vector = {"type": "array", "items": {"type": "number"}}
        return {"type": "array", "items": vector, "minItems": 1, "maxItems": int(arg.hi or 1)}
    if kind == "members":
        return {"type": "array", "items": {"type": "string"}}
    if kind == "replicas":
        count = {"type": "integer", "minimum": int(arg.lo or 1)}
        if arg.hi is not None:
            count["maximum"] = int(arg.hi)
        return {"anyOf": [count, {"type": "string", "enum": ["all"]}]}
    return {}


def _from(op: str, arg: str, description: str, **narrower: Any) -> dict[str, Any]:
    """A tool property passed on as `op`'s argument `arg`: its schema comes from the operation
    table, optionally narrowed (a smaller maximum, fewer choices) for agents;
    tests/mcp/test_schema_drift.py holds every narrowing inside what the node accepts."""
    p = {"description": description, **op_schema(TABLE[op].arg(arg)), **narrower}
    ORIGINS[id(p)] = (op, arg)
    return p


KEY = _from("put", "key", "The entry's key, e.g. 'task:42:status'.")
VALUE = _prop(None, "The value: any JSON (string, number, boolean, array or object).")
NAMESPACE = _from(
    "put",
    "ns",
    f"Namespace of the entry (default '{DEFAULT_NAMESPACE}'). Built in: {_BUILTIN_TEXT}.",
)
NAMESPACE_FILTER = _from("search", "ns", "Search only this namespace; omitted: every namespace.")
TTL = _from(
    "put",
    "ttl",
    "Seconds until the entry expires; 0 = never; omitted = the namespace's default TTL.",
)
METADATA = _from("put", "meta", "Metadata stored beside the value (a JSON object), e.g. tags.")
VECTOR = _from(
    "put", "vector", "An embedding of the value, as many numbers as the namespace's dimension."
)
PATTERN = _prop(
    "string",
    "What to look for: a glob over keys when it has * or ?, otherwise words to match "
    "in keys and values (and by meaning where the namespace has an embedder).",
    minLength=1,
)
QUERY = _prop("string", "Same as pattern (give one of the two).", minLength=1)
LIMIT = _prop("integer", "Most results to return (default 20).", minimum=1, maximum=MAX_RESULTS)
MODE = _prop(
    "string",
    "auto (default): glob over keys when the pattern has * or ?, otherwise semantic search "
    "in namespaces with an embedder plus keyword matching in keys and values; glob: keys "
    "only; substring: case-insensitive keyword match in keys and values; semantic: by "
    "meaning, only namespaces with an embedder.",
    enum=["auto", "glob", "substring", "semantic"],
)
PREFIX = _from("list", "prefix", "Only keys starting with this.")
KEY_GLOB = _from("list", "pattern", "Only keys matching this glob (* and ?).", minLength=1)
CURSOR = _from("list", "cursor", "The cursor of the previous page, to continue a long listing.")
WITH_VALUES = _from("list", "values", "Include values (default true).")


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, what an agent reads about it, and the arguments it takes."""

    name: str
    description: str
    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...] = ()
    read_only: bool = False
    destructive: bool = False

    @property
    def input_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": self.properties,
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        return schema


def check_arguments(
    spec: ToolSpec, arguments: dict[str, Any] | None, label: str | None = None
) -> dict[str, Any]:
    """The arguments, checked against the tool's schema.

    null counts as absent, except for an argument of any type (a stored value),
    where null is a value like any other.

    Raises `BadRequest` naming the first argument that is unknown, missing or
    of the wrong shape; `label` (default: the tool's name) starts the message.
    """
    label = label or spec.name
    args = {
        k: v
        for k, v in (arguments or {}).items()
        if v is not None or "type" not in spec.properties.get(k, {"type": None})
    }
    unknown = sorted(set(args) - set(spec.properties))
    if unknown:
        raise BadRequest(
            f"{label}: unknown argument(s) {', '.join(unknown)}; "
            f"it takes {', '.join(spec.properties)}"
        )
    for name in spec.required:
        if name not in args:
            raise BadRequest(f"{label}: missing required argument {name!r}")
    for name, value in args.items():
        problem = _problem(spec.properties[name], value)
        if problem:
            raise BadRequest(f"{label}: argument {name!r} {problem}")
    return args


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _problem(prop: dict[str, Any], value: Any) -> str | None:
    kind = prop.get("type")
    if kind is not None:
        if not isinstance(value, _TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
            return f"must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
        if kind == "number" and not math.isfinite(value):
            return "must be a finite number"
    if "enum" in prop and value not in prop["enum"]:
        return f"must be one of {', '.join(prop['enum'])}, not {value!r}"
    if "minimum" in prop and value < prop["minimum"]:
        return f"must be at least {prop['minimum']}"
    if "maximum" in prop and value > prop["maximum"]:
        return f"must be at most {prop['maximum']}"
    if "minLength" in prop and len(value) < prop["minLength"]:
        return "must not be empty"
    if "maxLength" in prop and len(value) > prop["maxLength"]:
        return f"must be at most {prop['maxLength']} characters"
    items = prop.get("items")
    if items is not None:
        for i, item in enumerate(value):
            problem = _problem(items, item)
            if problem:
                return f"item {i} {problem}"
    return None


# --- the tools ---------------------------------------------------------------

STORE = ToolSpec(
    "memory_store",
    "Store a value under a key in the swarm's shared memory (the local swarmnode, replicated "
    "to every node). Overwrites an existing value. Returns the stored key, its timestamp and "
    "when it expires.",
    {
        "key": KEY,
        "value": VALUE,
        "namespace": NAMESPACE,
        "ttl": TTL,
        "metadata": METADATA,
        "vector": VECTOR,
    },
    required=("key", "value"),
)
RETRIEVE = ToolSpec(
    "memory_retrieve",
    "Read the value stored under a key. Fails with not_found when the key does not exist or "
    "has expired, and says so when the namespace itself does not exist. With linearizable, "
    "reads the consensus group's register of the key (what memory_cas sets) through its "
    "leader.",
    {
        "key": KEY,
        "namespace": NAMESPACE,
        "linearizable": _from(
            "get", "linearizable", "Read memory_cas's register through the leader."
        ),
    },
    required=("key",),
    read_only=True,
)
LIST = ToolSpec(
    "memory_list",
    "List the entries of one namespace (keys, types, expiry and values), optionally only keys "
    "with a prefix or matching a glob. Long listings come in pages: pass the returned cursor "
    "to get the next one.",
    {
        "namespace": NAMESPACE,
        "prefix": PREFIX,
        "pattern": KEY_GLOB,
        "limit": LIMIT,
        "cursor": CURSOR,
        "values": WITH_VALUES,
    },
    read_only=True,
)
DELETE = ToolSpec(
    "memory_delete",
    "Delete the entry under a key (on every node, by replication). Deleting a key that does "
    "not exist is not an error; the result says whether anything was deleted.",
    {"key": KEY, "namespace": NAMESPACE},
    required=("key",),
    destructive=True,
)
SEARCH = ToolSpec(
    "memory_search",
    "Find entries by key pattern, keywords or meaning, in one namespace or all of them. Each "
    "result says how it matched: glob (key pattern), key or value (keyword found there), "
    "semantic (close in meaning, with its score).",
    {
        "pattern": PATTERN,
        "query": QUERY,
        "namespace": NAMESPACE_FILTER,
        "limit": LIMIT,
        "mode": MODE,
    },
    read_only=True,
)
STATS = ToolSpec(
    "memory_stats",
    "How much is stored: entries and bytes per namespace (or of one namespace), and the "
    "node's own summary (node id, cluster members, disk use).",
    {"namespace": _from("ns_stats", "ns", "Only this namespace.")},
    read_only=True,
)
VECTOR_SEARCH = ToolSpec(
    "memory_vector_search",
    "Nearest neighbours by embedding in one namespace: give a vector of the namespace's "
    "dimension, text when the namespace has an embedder, or the key of an entry to find "
    "what is close to it. Returns keys, scores, values and metadata; filter keeps only "
    "entries whose metadata matches.",
    {
        "vector": _from("vsearch", "vector", "The query embedding."),
        "text": _from(
            "vsearch", "text", "Query text, embedded by the namespace's embedder.", minLength=1
        ),
        "key": _from("vsearch", "key", "Search near this entry's own vector."),
        "k": _from("vsearch", "k", "How many neighbours (default 10).", maximum=MAX_RESULTS),
        "namespace": _from("vsearch", "ns", "The namespace to search."),
        "filter": _from(
            "vsearch",
            "filter",
            "Metadata filter: {field: value} matches equal values, {field: [v1, v2]} any of them.",
        ),
        "ef": _from(
            "vsearch", "ef", "Search breadth of the HNSW index (higher: better recall, slower)."
        ),
    },
    required=("namespace",),
    read_only=True,
)
SYNC = ToolSpec(
    "memory_sync",
    "Run anti-entropy now: compare this node's memory with other nodes and repair every "
    "difference, then report how many keys were repaired and how many bytes it took.",
    {
        "target": _from(
            "sync",
            "peer",
            "'all' (default) for every live node, or one node: its node id or HOST:PORT.",
            minLength=1,
        )
    },
)
COMPRESS = ToolSpec(
    "memory_compress",
    "Compact the memory: drop expired entries and tombstones that are safe to drop, archive "
    "stale entries of namespaces with archive_after, and report what was removed, the bytes on "
    "disk before and after, and the bytes archived with their compression ratio.",
    {"namespace": _from("compact", "ns", "Report only this namespace's share.")},
)
PERSIST = ToolSpec(
    "memory_persist",
    "Snapshot the whole memory now under a session id (action persist, the default), or "
    "bring a snapshot's entries back (action restore: entries changed or deleted since are "
    "rewritten with their snapshot value; newer keys are kept).",
    {
        "sessionId": _from(
            "persist", "session_id", "Snapshot name: letters, digits and _.- (1-128).", minLength=1
        ),
        "action": _prop("string", "persist (default) or restore.", enum=["persist", "restore"]),
        "namespace": _from("restore", "ns", "restore only this namespace."),
    },
    required=("sessionId",),
)
NAMESPACE_TOOL = ToolSpec(
    "memory_namespace",
    "Manage namespaces: init (create or change: default TTL, conflict policy, vector "
    "dimension and metric, embedder), delete (removes every entry in it, on every node), "
    "stats (entries and bytes; every namespace when none is named).",
    {
        "action": _prop("string", "init, delete or stats.", enum=["init", "delete", "stats"]),
        "namespace": _from("ns_init", "ns", "The namespace (required for init and delete)."),
        "ttl": _from("ns_init", "ttl", "init: default TTL in seconds (0 = none)."),
        "policy": _from(
            "ns_init",
            "policy",
            "init: conflict policy: lww (last writer wins), mv (keep concurrent versions), "
            "consensus.",
        ),
        "dim": _from("ns_init", "dim", "init: vector dimension."),
        "metric": _from("ns_init", "metric", "init: vector metric."),
        "embedder": _from(
            "ns_init",
            "embedder",
            "init: the embedder that turns stored text into vectors, e.g. all-MiniLM-L6-v2 "
            "(with dim 384); it makes semantic search possible in this namespace.",
            minLength=1,
        ),
    },
    required=("action",),
)
ANALYTICS = ToolSpec(
    "memory_analytics",
    "What the memory has been doing over a timeframe: operations by namespace and kind, read "
    "hit ratio, latency percentiles, errors, replication lag and gossip traffic.",
    {"timeframe": _from("analytics", "timeframe", "5m, 1h (default), 24h or 7d.")},
    read_only=True,
)

CAS = ToolSpec(
    "memory_cas",
    "Compare-and-swap a key through the cluster's consensus group, linearizably: the value is "
    "set only if the key holds expected now (omit expected: only if the key is absent). Says "
    "whether it swapped and what the key holds after. Use it where agents must not both "
    "win, e.g. advancing a shared state. Fails with unavailable when no quorum answers (the "
    "swap may still take effect); read with memory_retrieve and linearizable true.",
    {
        "key": _from("cas", "key", "The register's key."),
        "value": _from("cas", "value", "The new value (any JSON)."),
        "expected": _from("cas", "expected", "The value it must hold now; omitted: absent."),
        "namespace": _from(
            "cas", "ns", "A namespace of policy consensus (default 'decisions').", minLength=1
        ),
    },
    required=("key", "value"),
)
CLAIM = ToolSpec(
    "memory_claim",
    "Exclusive task claims through the consensus group: action claim takes a lease on a key "
    "for owner and returns a fencing token that grows with every grant (when someone else "
    "holds it: granted false, with the holder and its token); renew extends it; release "
    "gives it up. A lease that lapses frees the key. Pass the token to whatever acts on the "
    "task so a stale holder can be refused.",
    {
        "action": _prop(
            "string", "claim (default), renew or release.", enum=["claim", "renew", "release"]
        ),
        "key": _from("claim", "key", "The task's key."),
        "owner": _from("claim", "owner", "Who claims it (this agent's id)."),
        "lease": _from("claim", "lease", "claim and renew: seconds the lease lasts."),
        "token": _from("renew", "token", "renew and release: the claim's fencing token."),
        "namespace": _from("claim", "ns", "The namespace (default 'tasks').", minLength=1),
    },
    required=("key", "owner"),
)

USAGE_ACTIONS: dict[str, ToolSpec] = {
    "store": STORE,
    "retrieve": RETRIEVE,
    "list": LIST,
    "delete": DELETE,
    "search": SEARCH,
}
"""memory_usage's actions and the tool each one is an alias of."""


def _usage_properties() -> dict[str, dict[str, Any]]:
    props: dict[str, dict[str, Any]] = {
        "action": _prop("string", "What to do.", enum=list(USAGE_ACTIONS))
    }
    for spec in USAGE_ACTIONS.values():
        for name, prop in spec.properties.items():
            props.setdefault(name, prop)
    props["namespace"] = _from(
        "put", "ns", f"{NAMESPACE['description']} For search: omitted means every namespace."
    )
    props["pattern"] = _prop(
        "string",
        f"search: {PATTERN['description']} list: only keys matching this glob.",
        minLength=1,
    )
    return props


USAGE = ToolSpec(
    "memory_usage",
    "The swarm's shared memory in one tool. action store (needs key, value; optional ttl, "
    "metadata), retrieve (key), list (namespace; optional prefix, pattern, cursor), delete "
    "(key), search (pattern or query; optional mode, limit). Same as memory_store, "
    "memory_retrieve, memory_list, memory_delete and memory_search.",
    _usage_properties(),
    required=("action",),
)

TOOLS: tuple[ToolSpec, ...] = (
    USAGE,
    STORE,
    RETRIEVE,
    LIST,
    DELETE,
    SEARCH,
    STATS,
    VECTOR_SEARCH,
    SYNC,
    COMPRESS,
    PERSIST,
    NAMESPACE_TOOL,
    ANALYTICS,
    CAS,
    CLAIM,
)
