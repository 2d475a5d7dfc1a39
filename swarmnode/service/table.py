"""The one operation table: every client operation described once, as data.

Like Redis's command table (src/commands/*.json), each operation is declared
here with its arguments (type, default, limits, one line of help), its
result, its error codes and its one line of documentation, and everything
that speaks to clients is made from it: the argument checks of the service
layer (`service/args.py`), both Python clients' methods
(`client/operations.py`, generated), the CLI's parser (`cli.py`), the MCP
tools' argument schemas (`mcp/schema.py`) and the operations table of
docs/PROTOCOL.md (generated). Tests fail when any of them drifts.

Argument kinds (`Arg.kind`):

| kind | wire type | notes |
|---|---|---|
| ns | str | a namespace name; `known` (default for reads): an unknown one is `not_found` |
| key | str | non-empty UTF-8, no NUL, at most `store.max_key_bytes` |
| str | str | `max_len` characters at most |
| int, number | int, int or float | `lo`..`hi`; a bool is not a number |
| bool | bool | |
| enum | str | one of `choices` |
| ttl | number or str | seconds, or a duration as `ns list` prints it (`90s`, `4h`, `none`) |
| value | any | a stored value (nil, bool, int, float, str, bytes, lists, maps) |
| map | map | str keys |
| members | str or [str] | set members; one str is one member |
| vector | [number] or bytes | bytes are little-endian float32 |
| vectors | [vector] | `lo`..`hi` vectors, each a `vector` |
| replicas | int or "all" | a replication factor `lo`..`hi`, or every node |
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

MAX_LIMIT = 10_000
MAX_K = 10_000
MAX_EF = 10_000
MAX_BATCH = 1_024
"""Query vectors of one `vsearch_many`: a bound on one request's work and reply."""
MAX_SHORT = 1024
"""Characters of a short string argument (patterns, cursors, prefixes, session ids)."""


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str
    doc: str
    required: bool = False
    default: Any = None
    """Applied when the argument is absent or null (None: no default, the op decides)."""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    max_len: int | None = None
    known: bool = False
    """For `ns`: the namespace must exist (defined, built in, or holding entries)."""
    cli: str = "flag"
    """How the CLI takes it: "positional", "optional" (positional that may be left out),
    "flag" (`--name`), "many" (one or more positionals), or "hidden"."""
    cli_name: str | None = None
    """The CLI's flag name when it differs (without the dashes; one letter makes `-k`)."""
    client: str = ""
    """How the Python clients take it: "positional" or "keyword"; default: positional when
    required, keyword (with a default of None) otherwise."""

    @property
    def client_positional(self) -> bool:
        return self.client == "positional" or (not self.client and self.required)


@dataclass(frozen=True)
class Cli:
    """How the command line exposes an operation."""

    command: tuple[str, ...]
    """E.g. ("get",) or ("ns", "init")."""
    help: str


@dataclass(frozen=True)
class OpSpec:
    name: str
    doc: str
    args: tuple[Arg, ...]
    result: str
    errors: tuple[str, ...] = ("bad_request",)
    kind: str = "read"
    """read | write | admin | stream"""
    eager: bool = True
    """May start inside the API server's read callback (see api/server.py): quick ops that never
    enter `asyncio.timeout()`, use the current task or set context variables before their
    first wait."""
    cli: Cli | None = None
    client: bool = True
    """Has a method in the Python clients (streams have their own)."""
    notes: str = ""
    """Further documentation for docs/PROTOCOL.md."""

    def arg(self, name: str) -> Arg:
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(f"{self.name} has no argument {name}")

    @functools.cached_property
    def arg_names(self) -> frozenset[str]:
        """Computed once: every request's arguments are checked against it."""
        return frozenset(a.name for a in self.args)


def _ns(
    doc: str = "Namespace.", *, known: bool = False, required: bool = True, cli: str = ""
) -> Arg:
    return Arg(
        "ns",
        "ns",
        doc,
        required=required,
        known=known,
        cli=cli or ("positional" if required else "flag"),
    )


def _key(doc: str = "Key.") -> Arg:
    return Arg("key", "key", doc, required=True, cli="positional")


def _claim_holder() -> tuple[Arg, Arg]:
    """`renew` and `release` name the claim they act on by its holder and fencing token."""
    return (
        Arg("owner", "str", "The holder.", required=True, cli="positional", max_len=256),
        Arg(
            "token",
            "int",
            "The claim's fencing token.",
            required=True,
            cli="positional",
            lo=1,
            hi=(1 << 63) - 1,
        ),
    )


TTL_DOC = (
    "Seconds until it expires (0: never; absent: the namespace's default); or 90s, 5m, 4h, 7d."
)

OPERATIONS: tuple[OpSpec, ...] = (
    OpSpec(
        "ping",
        "Is the node there: its id, version, clock and gossip address.",
        (),
        "{pong, node_id, version, time_ms, address}",
        cli=Cli(("ping",), "is the node there"),
    ),
    OpSpec(
        "put",
        "Store a value (with optional metadata, vector and TTL) under a key.",
        (
            _ns(),
            _key(),
            Arg("value", "value", "The value.", required=True, cli="positional"),
            Arg("ttl", "ttl", TTL_DOC),
            Arg("meta", "map", "Metadata stored beside the value (used by vsearch filters)."),
            Arg("vector", "vector", "An embedding, as many numbers as the namespace's dim."),
            Arg("if_absent", "bool", "Fail with conflict if the key exists.", default=False),
            Arg("if_exists", "bool", "Fail with not_found unless the key exists.", default=False),
            Arg("keep_ttl", "bool", "Keep the live value's expiry (not with ttl).", default=False),
            Arg(
                "embedder",
                "str",
                "With vector, in a namespace that has an embedder: the embedder that made it.",
                max_len=128,
            ),
        ),
        "{ns, key, ts, expires_at}",
        ("bad_request", "conflict", "not_found", "wrong_type", "too_large", "unavailable"),
        kind="write",
        cli=Cli(("put",), "store a value"),
        notes="In a namespace with an embedder, a put without `vector` gets one from its text "
        "value (a str, or a map's `text` field); a put with its own `vector` must name the "
        "namespace's embedder in `embedder`.",
    ),
    OpSpec(
        "get",
        "Read a live entry.",
        (
            _ns(known=True),
            _key(),
            Arg("vector", "bool", "Include the vector.", default=False),
            Arg(
                "linearizable",
                "bool",
                "Read the consensus group's register of the key through its leader (ReadIndex): "
                "what cas last set, linearizably.",
                default=False,
            ),
        ),
        "{ns, key, type, value, meta, ts, expires_at, updated_ms, agent}, vector when asked; "
        "MV namespaces add siblings [{value, meta, ts, expires_at, writer, agent}] and conflict; "
        "a key of a consensus namespace whose conflict the group decided adds decided (the "
        "decision's log index) and rejected [{value, writer, ts}]; also [kinds] when the key "
        "holds several kinds; with linearizable: {ns, key, type: register, value, "
        "linearizable: true}",
        ("bad_request", "not_found", "unavailable"),
        cli=Cli(("get",), "read a value"),
    ),
    OpSpec(
        "delete",
        "Delete a key (a tombstone that replicates).",
        (_ns(), _key()),
        "{ns, key, deleted: bool}",
        ("bad_request", "unavailable"),
        kind="write",
        cli=Cli(("del",), "delete a key"),
    ),
    OpSpec(
        "expire",
        "Give a live entry a new TTL without changing its value.",
        (
            _ns(known=True),
            _key(),
            Arg(
                "ttl",
                "ttl",
                "New TTL: seconds or 90s/5m/4h/7d; 0 or none: never expire.",
                required=True,
                cli="positional",
            ),
        ),
        "{ns, key, expires_at}",
        ("bad_request", "not_found", "conflict", "unavailable"),
        kind="write",
        cli=Cli(("expire",), "set a key's TTL (0: never expire)"),
        notes="On an MV key with concurrent versions it is `conflict`: write the value to keep "
        "first.",
    ),
    OpSpec(
        "list",
        "Keys (and optionally values) of a namespace, in key order, a page at a time.",
        (
            _ns(known=True),
            Arg("prefix", "str", "Only keys starting with this.", max_len=MAX_SHORT),
            Arg("pattern", "str", "Only keys matching this glob.", max_len=MAX_SHORT),
            Arg("limit", "int", "Most items per page.", default=100, lo=1, hi=MAX_LIMIT),
            Arg("cursor", "str", "The previous page's cursor.", max_len=MAX_SHORT * 2),
            Arg("values", "bool", "Include values.", default=False),
        ),
        "{items: [{ns, key, type, ts, expires_at, value?, meta?}], cursor: str or null}",
        ("bad_request", "not_found"),
        cli=Cli(("ls",), "list keys of a namespace"),
    ),
    OpSpec(
        "search",
        "Find keys and string values by glob or substring, in one namespace or all.",
        (
            Arg(
                "pattern",
                "str",
                "Glob (with *?[) or words.",
                required=True,
                cli="positional",
                max_len=MAX_SHORT,
            ),
            _ns("One namespace (default: all).", known=True, required=False),
            Arg(
                "mode",
                "enum",
                "How to match.",
                default="auto",
                choices=("auto", "glob", "substring"),
            ),
            Arg(
                "in",
                "enum",
                "Where to look.",
                default="both",
                choices=("keys", "values", "both"),
                cli_name="in",
            ),
            Arg("limit", "int", "Most results.", default=100, lo=1, hi=MAX_LIMIT),
        ),
        "{items: [{ns, key, type, match: key or value, value?, meta?}], scanned, truncated, mode}",
        ("bad_request", "not_found"),
        cli=Cli(("search",), "find keys and values by glob or substring"),
        notes="auto = glob when the pattern has `*?[`, else substring (case-insensitive); "
        "non-string values are matched as JSON text.",
    ),
    OpSpec(
        "vsearch",
        "Nearest neighbours by vector, by text (namespaces with an embedder) or like a key.",
        (
            _ns(known=True),
            Arg("vector", "vector", "The query vector.", client="positional"),
            Arg(
                "text",
                "str",
                "Query text, embedded by the namespace's embedder.",
                max_len=1 << 20,
                cli="optional",
            ),
            Arg("key", "key", "Search near this entry's vector."),
            Arg("k", "int", "Neighbours to return.", default=10, lo=1, hi=MAX_K, cli_name="k"),
            Arg("filter", "map", "Metadata filter: {f: x}, {f: {$in: [...]}}, {f: {$eq: x}}."),
            Arg(
                "ef", "int", "HNSW search breadth (higher: better recall, slower).", lo=1, hi=MAX_EF
            ),
            Arg("embedder", "str", "With vector: the embedder that made it.", max_len=128),
        ),
        "{ns, metric, better, embedder, exact, items: [{key, score, value, meta, conflict?}]}",
        ("bad_request", "not_found", "unavailable"),
        cli=Cli(("vsearch",), "nearest neighbours by text, vector or key"),
        notes="Give exactly one of vector, text, key. Scores: cosine similarity, inner "
        "product, or Euclidean distance (l2). In mv/consensus namespaces a key is found by "
        "its newest live sibling's vector and its item carries `conflict`. `unavailable` "
        "while an index is loading or rebuilding.",
    ),
    OpSpec(
        "vsearch_many",
        "Nearest neighbours of many query vectors in one request (one batched index search).",
        (
            _ns(known=True),
            Arg(
                "vectors",
                "vectors",
                "The query vectors.",
                required=True,
                lo=1,
                hi=MAX_BATCH,
            ),
            Arg("k", "int", "Neighbours per query.", default=10, lo=1, hi=MAX_K),
            Arg("filter", "map", "Metadata filter, applied to every query (as vsearch's)."),
            Arg(
                "ef", "int", "HNSW search breadth (higher: better recall, slower).", lo=1, hi=MAX_EF
            ),
            Arg("embedder", "str", "The embedder that made the vectors.", max_len=128),
        ),
        "{ns, metric, better, embedder, exact, results: [{items: [{key, score, value, meta, "
        "conflict?}]}]}",
        ("bad_request", "not_found", "unavailable"),
        notes="`results[i]` is what vsearch gives for `vectors[i]`, in query order; a bad "
        "vector anywhere refuses the whole request. Query text is not taken (embed it with "
        "vsearch, or send the embedder's vectors naming it).",
    ),
    OpSpec(
        "incr",
        "Add to a counter (a PN-counter: no increment is ever lost).",
        (
            _ns(),
            _key(),
            Arg(
                "by",
                "int",
                "How much (may be negative).",
                default=1,
                lo=-(1 << 62) + 1,
                hi=(1 << 62) - 1,
                cli="optional",
                client="positional",
            ),
            Arg("ttl", "ttl", TTL_DOC),
        ),
        "{ns, key, value}",
        ("bad_request", "wrong_type", "unavailable"),
        kind="write",
        cli=Cli(("incr",), "add to a counter"),
    ),
    OpSpec(
        "sadd",
        "Add members to a set (add-wins).",
        (
            _ns(),
            _key(),
            Arg("members", "members", "Members.", required=True, cli="many"),
            Arg("ttl", "ttl", TTL_DOC),
        ),
        "{ns, key, added}",
        ("bad_request", "wrong_type", "too_large", "unavailable"),
        kind="write",
        cli=Cli(("sadd",), "add set members"),
    ),
    OpSpec(
        "srem",
        "Remove members from a set.",
        (_ns(), _key(), Arg("members", "members", "Members.", required=True, cli="many")),
        "{ns, key, removed}",
        ("bad_request", "wrong_type", "too_large", "unavailable"),
        kind="write",
        cli=Cli(("srem",), "remove set members"),
    ),
    OpSpec(
        "smembers",
        "The members of a set, sorted.",
        (_ns(known=True), _key()),
        "{ns, key, members}",
        ("bad_request", "not_found", "wrong_type"),
        cli=Cli(("smembers",), "set members"),
    ),
    OpSpec(
        "watch",
        "Stream changes as they are committed (here, and on the owners of a sharded "
        "namespace's partitions).",
        (
            _ns("Only this namespace (it need not exist yet).", required=False),
            Arg("prefix", "str", "Only keys starting with this.", max_len=MAX_SHORT),
            Arg("values", "bool", "Include values.", default=True),
        ),
        "stream of {ns, key, event, origin, seq, agent?, type?, value?}",
        ("bad_request", "not_found", "too_large"),
        kind="stream",
        eager=False,
        client=False,
        notes="event: put, delete, expire, incr, sadd, srem, ttl, archive, restore, decide (the "
        "consensus group decided a conflict of a consensus namespace: every replica writes "
        "the decided version itself, origin local); origin: "
        "local, remote, sweep. `agent`: who made the entry's latest write. "
        "A watcher that falls behind by more than `api.watch_buffer_bytes` is ended with "
        "`too_large` (re-subscribe and re-read). A sharded namespace's changes come from "
        "one owner per partition, each owner's in its commit order (`seq` is that node's); "
        "event `gap` {ns, reason, partitions, uncovered} says its changes to `partitions` "
        "may have been missed (re-read them) and that `uncovered` ones have no reachable "
        "owner.",
    ),
    OpSpec(
        "cas",
        "Compare-and-swap the consensus group's register of a key, linearizably.",
        (
            _ns("A namespace of policy consensus.", known=True),
            _key(),
            Arg("value", "value", "The new value.", required=True, cli="positional"),
            Arg(
                "expected",
                "value",
                "The value it must hold now; omitted: the key must be absent.",
                cli_name="expected",
            ),
        ),
        "{ns, key, ok, exists, value}: ok tells whether it swapped; value is what the register "
        "holds after (the current value when it did not swap)",
        ("bad_request", "not_found", "unavailable"),
        kind="write",
        cli=Cli(("cas",), "compare-and-swap a key (linearizable)"),
        notes="Registers of the consensus group, read with `get {linearizable: true}`; they "
        "are not the CRDT entries `put` writes. `unavailable` without a quorum (within about "
        "one election timeout): the swap may still take effect.",
    ),
    OpSpec(
        "claim",
        "Take an exclusive lease on a key (a task) and get a fencing token.",
        (
            _ns(known=True),
            _key(),
            Arg(
                "owner",
                "str",
                "Who claims it (an agent id).",
                required=True,
                cli="positional",
                max_len=256,
            ),
            Arg(
                "lease",
                "ttl",
                "Seconds the claim lasts unless renewed (or 30s, 5m...).",
                required=True,
                cli="positional",
            ),
        ),
        "{ns, key, granted, owner, token, lease}: when not granted, owner and token are the "
        "holder's",
        ("bad_request", "not_found", "unavailable"),
        kind="write",
        cli=Cli(("claim",), "claim a key exclusively for a lease"),
        notes="The token increases with every grant of the key: whoever acts on a claim can "
        "refuse a stale holder by its token. A lease that lapses frees the key; a new leader "
        "frees no key before every lease an old leader could have granted has lapsed.",
    ),
    OpSpec(
        "renew",
        "Extend a claim the caller holds.",
        (
            _ns(known=True),
            _key(),
            *_claim_holder(),
            Arg("lease", "ttl", "Seconds from now.", required=True, cli="positional"),
        ),
        "{ns, key, renewed}",
        ("bad_request", "not_found", "unavailable"),
        kind="write",
        cli=Cli(("renew",), "extend a claim"),
    ),
    OpSpec(
        "release",
        "Give a claim up.",
        (
            _ns(known=True),
            _key(),
            *_claim_holder(),
        ),
        "{ns, key, released}",
        ("bad_request", "not_found", "unavailable"),
        kind="write",
        cli=Cli(("release",), "give a claim up"),
    ),
    OpSpec(
        "ns_init",
        "Create or change a namespace: default TTL, conflict policy, vector settings.",
        (
            Arg("ns", "ns", "Namespace.", required=True, cli="positional"),
            Arg("ttl", "ttl", "Default TTL of its entries (0: none)."),
            Arg("policy", "enum", "Conflict policy.", choices=("lww", "mv", "consensus")),
            Arg("dim", "int", "Vector dimension.", lo=1, hi=4096),
            Arg("metric", "enum", "Vector metric.", choices=("cosine", "l2", "ip")),
            Arg("embedder", "str", "Embedder of text values, e.g. all-MiniLM-L6-v2.", max_len=128),
            Arg(
                "replicas",
                "replicas",
                "Nodes holding each partition (R), or all (every node holds everything).",
                lo=1,
                hi=64,
            ),
            Arg(
                "partitions",
                "int",
                "Partitions of a sharded namespace: a power of two, fixed once set (default 256).",
                lo=1,
                hi=4096,
            ),
            Arg(
                "w",
                "int",
                "Owners that must commit a write before it is acknowledged.",
                lo=1,
                hi=64,
            ),
            Arg("readers", "members", "Who may read: agent ids, role:<name>, * (everyone)."),
            Arg("writers", "members", "Who may write: agent ids, role:<name>, * (everyone)."),
            Arg("owner", "str", "The agent that may change or delete it.", max_len=64),
            Arg(
                "archive_after",
                "ttl",
                "Archive entries neither written nor read here for this long (0: never).",
            ),
            Arg(
                "archive_expired", "bool", "Keep a copy of every entry that expires in the archive."
            ),
        ),
        "the definition {name, ttl, policy, dim, metric, embedder, cleared_at, builtin, "
        "replicas?, partitions?, w?, owner?, readers?, writers?, archive_after?, "
        "archive_expired?}",
        ("bad_request", "conflict", "forbidden", "unavailable"),
        kind="write",
        cli=Cli(("ns", "init"), "create or change a namespace"),
        notes="With `replicas` R the namespace is sharded: split into `partitions` placed on R "
        "nodes each by rendezvous hashing, so a node stores about R/N of it. Shard a "
        "namespace when you create it (a namespace that holds entries here cannot be "
        "sharded); its partition count never changes. `replicas: all` keeps (or makes) every "
        "node hold every partition. "
        "Access: an agent may create a namespace nobody defined (it becomes its owner) "
        "and change or delete only namespaces it owns; `agent:<id>` namespaces are owned by "
        "<id> and private unless `readers`/`writers` say otherwise; other namespaces are open "
        "until `readers`/`writers` are set.",
    ),
    OpSpec(
        "ns_delete",
        "Delete a namespace and every entry in it, on every node.",
        (_ns(known=True),),
        "{ns, deleted, cleared_at}",
        ("bad_request", "not_found", "unavailable"),
        kind="write",
        cli=Cli(("ns", "delete"), "delete a namespace and its entries"),
    ),
    OpSpec(
        "ns_stats",
        "A namespace's definition and counts, or every namespace's.",
        (
            Arg(
                "ns",
                "ns",
                "One namespace (default: all).",
                known=True,
                cli="optional",
                client="positional",
            ),
        ),
        "definition + {entries, stored, tombstones, bytes}, or {namespaces: {name: ...}}",
        ("bad_request", "not_found"),
        cli=Cli(("ns", "stats"), "entries and bytes per namespace"),
    ),
    OpSpec(
        "ns_list",
        "Every namespace: defined, built in, or holding data.",
        (),
        "{namespaces: [...]}",
        cli=Cli(("ns", "list"), "list namespaces"),
    ),
    OpSpec(
        "members",
        "Cluster members as this node sees them.",
        (),
        "{members: [{node_id, address, state, incarnation, since_s, self}]}",
        cli=Cli(("members",), "cluster members"),
    ),
    OpSpec(
        "sync",
        "Run anti-entropy now with every live peer (or one) and wait for the repairs.",
        (Arg("peer", "str", "A node id, HOST:PORT, or all.", max_len=256, client="positional"),),
        "{peers, rounds_ok, rounds_failed, keys_repaired, keys_sent, keys_received, "
        "bytes_exchanged, digest_bytes, state_bytes, failures}",
        ("bad_request", "not_found", "unavailable"),
        kind="admin",
        eager=False,
        cli=Cli(("sync",), "run anti-entropy now"),
    ),
    OpSpec(
        "compact",
        "Drop expired entries and collectable tombstones now, and archive stale entries.",
        (Arg("ns", "ns", "Report only this namespace.", known=True, client="positional"),),
        "{swept, removed: {ns: {entries, bytes}}, entries_removed, disk_bytes_before, "
        "disk_bytes_after, seconds, archive: {entries, bytes, compressed_bytes, "
        "compression_ratio, namespaces}}",
        ("bad_request", "not_found"),
        kind="admin",
        eager=False,
        cli=Cli(("compact",), "drop expired entries and old tombstones now"),
    ),
    OpSpec(
        "persist",
        "Snapshot the store under a session id (a consistent, compacted LMDB copy).",
        (
            Arg(
                "session_id",
                "str",
                "Letters, digits and _.- (1-128).",
                required=True,
                cli="positional",
                max_len=128,
            ),
        ),
        "{session_id, path, bytes}",
        ("bad_request", "unavailable"),
        kind="admin",
        eager=False,
        cli=Cli(("persist",), "snapshot the store"),
    ),
    OpSpec(
        "restore",
        "Write a snapshot's live entries back as fresh writes (newer keys are kept).",
        (
            Arg("session_id", "str", "The snapshot.", required=True, cli="positional", max_len=128),
            _ns("Only this namespace.", required=False),
        ),
        "{session_id, restored, unchanged, failed, errors}",
        ("bad_request", "not_found", "unavailable"),
        kind="admin",
        eager=False,
        cli=Cli(("restore",), "restore a snapshot"),
    ),
    OpSpec(
        "stats",
        "The node's counters and gauges: members, store, writer, gossip, repair, transport, "
        "clients, vectors, and the consensus group as this node sees it.",
        (),
        "a map of sections (see docs/OPERATIONS.md)",
        notes="`consensus` is null when the group is turned off; {joined: false, leader} "
        "before this node is in the group; else {role, term, leader, commit, applied, "
        "last_index, voters, learners, waiting, group: {counters}, ...}, and lag {node: "
        "entries behind the commit index} when this node leads (see docs/PROTOCOL.md).",
    ),
    OpSpec(
        "analytics",
        "What the node has been doing over a timeframe: operations, hit ratio, latency, "
        "errors, replication lag, traffic.",
        (Arg("timeframe", "enum", "Window.", default="1h", choices=("5m", "1h", "24h", "7d")),),
        "{timeframe, seconds, bucket_s, operations, reads, errors, latency_ms, replication, "
        "traffic}",
        cli=Cli(("analytics",), "operations, latency and replication lag over a window"),
    ),
    OpSpec(
        "hello",
        "Present a token: the connection then speaks for its agent (without one: who am I).",
        (
            Arg(
                "token",
                "str",
                "The token agent_register returned.",
                max_len=256,
                client="positional",
            ),
        ),
        "{agent, roles, namespaces, quota, usage, lease_s, expires_ms, state, ...}, or "
        "{agent, admin, authenticated} without a token",
        ("bad_request", "forbidden"),
        cli=None,
        notes="Clients send it on connecting when `SWARMNODE_TOKEN` is set. Refused tokens "
        "(unknown, revoked, lease lapsed, replaced) are `forbidden`.",
    ),
    OpSpec(
        "agent_register",
        "Register an agent and what it needs (namespaces, quota, lease); returns its token once.",
        (
            Arg(
                "agent",
                "str",
                "Agent id: letters, digits, _ and - (1-58).",
                required=True,
                cli="positional",
                max_len=58,
            ),
            Arg("namespaces", "map", "Namespaces it uses: {name or prefix*: read or write}."),
            Arg("quota", "map", "Limits of its live entries: {bytes, entries, vectors}."),
            Arg(
                "lease",
                "ttl",
                "How long the registration lives unless renewed (default [agents] default_lease).",
            ),
            Arg(
                "roles",
                "members",
                "Roles, for namespaces' readers and writers (role:<name>); "
                "admin: the administrator's rights.",
            ),
        ),
        "{agent, token, token_id, roles, namespaces, quota, usage, lease_s, registered_ms, "
        "expires_ms, state}",
        ("bad_request", "forbidden", "unavailable"),
        kind="admin",
        cli=Cli(("agent", "register"), "register an agent; prints its token once"),
        notes="Only the token's salted hash is stored; registering again issues a new token "
        "and the old one stops working.",
    ),
    OpSpec(
        "agent_renew",
        "Extend an agent's lease (any request of the agent renews a lease that is half gone).",
        (
            Arg(
                "agent",
                "str",
                "Agent id (default: the caller's).",
                max_len=58,
                cli="optional",
                client="positional",
            ),
            Arg("lease", "ttl", "New lease from now (default: the registered one)."),
        ),
        "{agent, expires_ms}",
        ("bad_request", "not_found", "forbidden", "unavailable"),
        kind="write",
        cli=Cli(("agent", "renew"), "extend an agent's lease"),
    ),
    OpSpec(
        "agent_revoke",
        "Revoke an agent's token on every node (it is refused from the next request on).",
        (
            Arg(
                "agent",
                "str",
                "Agent id (default: the caller's).",
                max_len=58,
                cli="optional",
                client="positional",
            ),
        ),
        "{agent, token_id, revoked}",
        ("bad_request", "not_found", "forbidden", "unavailable"),
        kind="write",
        cli=Cli(("agent", "revoke"), "revoke an agent's token"),
    ),
    OpSpec(
        "agent_list",
        "Registered agents, their leases and usage (never a token); an agent sees itself.",
        (Arg("agent", "str", "Only this agent.", max_len=58, cli="optional", client="positional"),),
        "{agents: [{agent, roles, namespaces, quota, usage: {bytes, entries, vectors}, lease_s, "
        "registered_ms, expires_ms, token_id, state}]}",
        ("bad_request", "not_found", "forbidden"),
        cli=Cli(("agent", "list"), "registered agents, leases and usage"),
    ),
    OpSpec(
        "archive_list",
        "Archived entries of a namespace (moved out of the live store here), a page at a time.",
        (
            _ns(),
            Arg("prefix", "str", "Only keys starting with this.", max_len=MAX_SHORT),
            Arg("limit", "int", "Most items per page.", default=100, lo=1, hi=MAX_LIMIT),
            Arg("cursor", "str", "The previous page's cursor.", max_len=MAX_SHORT * 2),
        ),
        "{items: [{ns, key, reason: stale or expired, archived_ms, bytes, agent}], cursor}",
        ("bad_request", "forbidden"),
        cli=Cli(("archive", "list"), "list archived entries"),
    ),
    OpSpec(
        "archive_get",
        "Read an archived entry without restoring it.",
        (_ns(), _key(), Arg("vector", "bool", "Include the vector.", default=False)),
        "the entry as get shows it, plus {reason, archived_ms}",
        ("bad_request", "not_found", "forbidden"),
        cli=Cli(("archive", "get"), "read an archived entry"),
    ),
    OpSpec(
        "archive_restore",
        "Bring archived entries back into the live store (one key, or every key with a prefix).",
        (
            _ns(),
            Arg("key", "key", "One key.", cli="optional"),
            Arg(
                "prefix",
                "str",
                "Every archived key starting with this ('' for all).",
                max_len=MAX_SHORT,
            ),
        ),
        "{ns, restored, missing}",
        ("bad_request", "not_found", "forbidden", "quota_exceeded", "unavailable"),
        kind="write",
        eager=False,
        cli=Cli(("archive", "restore"), "bring archived entries back"),
        notes="A stale entry comes back with its whole state as it was archived (no new write); "
        "an expired one is written again as a fresh entry with its old TTL.",
    ),
)

TABLE: dict[str, OpSpec] = {op.name: op for op in OPERATIONS}


def spec(name: str) -> OpSpec | None:
    return TABLE.get(name)


class Request:
    """One request: its spec, its arguments (checked, defaults applied, once `validate` has
    run), its context. A plain slotted class: one is made per request, and every step reads
    `op`, so it is an attribute rather than a property."""

    __slots__ = ("args", "ctx", "known", "notes", "op", "spec")

    def __init__(
        self,
        spec: OpSpec,
        args: dict[str, Any],
        ctx: Any,
        notes: dict[str, Any] | None = None,
        known: bool = True,
    ) -> None:
        self.spec = spec
        self.op = spec.name
        self.args = args
        self.ctx = ctx
        self.notes: dict[str, Any] = {} if notes is None else notes
        """What steps of the chain tell the ones after them (e.g. that a vector was
        embedded)."""
        self.known = known
        """False for an operation the node does not have: `validate` refuses it (after
        `measure` has counted it)."""

    def __repr__(self) -> str:
        return f"Request({self.op!r}, {self.args!r}, known={self.known})"
