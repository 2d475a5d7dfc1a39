"""The Redis commands this front end speaks, each carried out by the node's operations.

`COMMANDS` at the bottom is the one table: every command's arity, flags, key
positions, summary and syntax, the node operations it maps to, and its
handler. Dispatching, the arity and authentication checks, COMMAND, COMMAND
DOCS (redis-cli's hints) and the compatibility table in docs/PROTOCOL.md ("Redis protocol") all come
from it (a test checks the docs against it).

Values: SET stores the bytes it is given as text when they are UTF-8 and as
bytes otherwise; GET returns a string as stored, and any other value a node
entry can hold (a counter, a map or list written through the msgpack API) as
its JSON text. Replies follow the protocol the client chose with HELLO.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from swarmnode import __version__
from swarmnode.api.limits import ApiLimits
from swarmnode.api.server import RequestContext
from swarmnode.errors import SwarmError
from swarmnode.resp import vsets
from swarmnode.resp.args import parse_int
from swarmnode.resp.codec import OK, ErrorReply, SimpleString, Verbatim, is_int
from swarmnode.resp.errors import (
    NOAUTH,
    NOT_INTEGER,
    SYNTAX,
    WRONGPASS,
    WRONGTYPE,
    translate,
    unknown_command,
    unknown_subcommand,
    wrong_arity,
)
from swarmnode.resp.glob import compile_glob, literal_prefix
from swarmnode.resp.keys import DEFAULT_NS, KeyMap, redis_name
from swarmnode.resp.limits import RespLimits
from swarmnode.resp.pubsub import Subscriptions
from swarmnode.resp.routes import Route, routes
from swarmnode.resp.session import Session
from swarmnode.resp.table import Spec, command_docs, command_info

Dispatch = Callable[..., Awaitable[Any]]
Authenticate = Callable[[RequestContext, str], Awaitable[str | None]]
"""`await authenticate(ctx, token)`: the identity the token proves for the connection whose
context this is (the node's `hello`, which binds the agent to the connection's session),
or None to refuse it."""

REDIS_VERSION = "8.0.0"
"""What HELLO and INFO claim: the Redis version whose commands (vector sets) this speaks."""
SCAN_PAGE = 10_000
"""Keys read per `list` call while KEYS walks a namespace."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def stored_value(raw: bytes) -> str | bytes:
    """What SET stores: text when the bytes are UTF-8, else the bytes themselves."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def reply_value(view: dict[str, Any]) -> bytes:
    """GET's reply for an entry view: a string as stored, anything else as JSON text."""
    value = view["value"]
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(
        value, ensure_ascii=False, sort_keys=True, default=_json_bytes, separators=(",", ":")
    ).encode()


def _json_bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def redis_type(view: dict[str, Any]) -> str:
    return "set" if view["type"] == "set" else "string"


@dataclass
class ScanState:
    namespaces: tuple[str, ...]
    index: int
    after: str | None


class ScanCursors:
    """SCAN positions by cursor number, server-wide, the oldest forgotten past a bound.

    A position is (namespace, last key returned), which a 64-bit cursor cannot hold,
    so cursors are numbers handed out here; Redis clients only pass them back.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._states: OrderedDict[int, ScanState] = OrderedDict()
        self._next = 1

    def take(self, cursor: int) -> ScanState | None:
        return self._states.pop(cursor, None)

    def keep(self, state: ScanState) -> int:
        cursor = self._next
        self._next += 1
        self._states[cursor] = state
        while len(self._states) > self._limit:
            self._states.popitem(last=False)
        return cursor


class Commands:
    """Executes one command for one session; holds what is shared between connections."""

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        authenticate: Authenticate | None = None,
        server_stats: Callable[[], dict[str, Any]] | None = None,
        limits: RespLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or RespLimits()
        self.dispatch = dispatch
        """The node's operations; the hot handlers call it directly (one coroutine less)."""
        self._authenticate = authenticate
        self._server_stats = server_stats or dict
        self._clock = clock
        self.ctx = RequestContext(0, 0, ApiLimits(), internal=True)
        """The context of the front end's own reads (the namespace list that maps keys)."""
        self.started = clock()
        self.keys = KeyMap(self._ns_list, clock, self.limits.namespace_cache_s)
        self.cursors = ScanCursors(self.limits.max_scan_cursors)
        self.routes = routes(COMMANDS)
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    async def _ns_list(self) -> dict[str, Any]:
        return await self.dispatch("ns_list", {}, self.ctx)

    async def call(self, s: Session, op: str, **args: Any) -> Any:
        """One node operation on behalf of `s`."""
        return await self.dispatch(op, args, s.ctx)

    async def call_quiet(self, s: Session, op: str, **args: Any) -> Any:
        """`call`, with None for `not_found`."""
        try:
            return await self.dispatch(op, args, s.ctx)
        except SwarmError as exc:
            if exc.code == "not_found":
                return None
            raise

    def route(self, name: bytes) -> Route | None:
        """The table's entry for a command name as sent (any case); None if unknown."""
        return self.routes.get(name) or self.routes.get(name.lower())

    def begin(
        self, route: Route | None, s: Session, argv: list[bytes]
    ) -> Coroutine[Any, Any, Any] | ErrorReply:
        """The command's handler, not yet started, or the error that refuses it.

        The handler's coroutine raises `ErrorReply` or `SwarmError` for a failed
        command; `failed` turns either into its reply. The caller steps the
        coroutine itself, so a command that never waits needs no task.
        """
        if route is None:
            return self._error(unknown_command(argv))
        argc = len(argv)
        if argc < route.min_args or argc > route.max_args:
            return self._error(wrong_arity(route.name))
        if not s.authenticated and route.gated:
            return self._error(ErrorReply(NOAUTH))
        if s.subscriptions is not None and not route.subscribed_ok and s.subscribed and not s.resp3:
            return self._error(
                ErrorReply(
                    f"ERR Can't execute '{route.name}': only (P|S)SUBSCRIBE / "
                    "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                )
            )
        self.calls[route.name] += 1
        return route.handler(self, s, argv)

    def failed(self, exc: ErrorReply | SwarmError) -> ErrorReply:
        """The reply to a command whose handler raised `exc` (counted among the errors)."""
        return self._error(exc if isinstance(exc, ErrorReply) else translate(exc))

    def _error(self, exc: ErrorReply) -> ErrorReply:
        self.errors[exc.text.split(" ", 1)[0]] += 1
        return exc

    async def authenticate(self, s: Session, username: str | None, password: str) -> None:
        """AUTH and HELLO ... AUTH: WRONGPASS unless the hook accepts the password as a token."""
        if self._authenticate is None:
            if username is None:
                raise ErrorReply(
                    "ERR AUTH <password> called without any password configured for the "
                    "default user. Are you sure your configuration is correct?"
                )
            if username != "default":
                raise ErrorReply(WRONGPASS)
            return
        identity = await self._authenticate(s.ctx, password)
        if identity is None:
            raise ErrorReply(WRONGPASS)
        s.authenticated = True
        s.identity = identity

    def stats(self) -> dict[str, Any]:
        return {
            "commands": sum(self.calls.values()),
            "by_command": dict(self.calls),
            "errors": dict(self.errors),
        }


# --- connection ---------------------------------------------------------------------


async def cmd_ping(c: Commands, s: Session, argv: list[bytes]) -> Any:
    if s.subscribed and not s.resp3:
        return [b"pong", argv[1] if len(argv) > 1 else b""]
    return argv[1] if len(argv) > 1 else SimpleString("PONG")


async def cmd_echo(c: Commands, s: Session, argv: list[bytes]) -> Any:
    return argv[1]


async def cmd_hello(c: Commands, s: Session, argv: list[bytes]) -> Any:
    proto = 3 if s.resp3 else 2
    i = 1
    if len(argv) > 1:
        if not is_int(argv[1]):
            raise ErrorReply("ERR Protocol version is not an integer or out of range")
        proto = int(argv[1])
        if proto not in (2, 3):
            raise ErrorReply("NOPROTO unsupported protocol version")
        i = 2
    name: str | None = None
    credentials: tuple[str, str] | None = None
    while i < len(argv):
        option = argv[i].upper()
        if option == b"AUTH" and i + 2 < len(argv):
            credentials = (
                argv[i + 1].decode("utf-8", "replace"),
                argv[i + 2].decode("utf-8", "replace"),
            )
            i += 3
        elif option == b"SETNAME" and i + 1 < len(argv):
            name = _client_name(argv[i + 1])
            i += 2
        else:
            raise ErrorReply(
                f"ERR Syntax error in HELLO option '{argv[i].decode(errors='replace')}'"
            )
    if credentials is not None:
        await c.authenticate(s, *credentials)
    elif not s.authenticated:
        raise ErrorReply(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time"
        )
    if name is not None:
        s.name = name or None
    s.resp3 = proto == 3
    return {
        "server": "redis",
        "version": REDIS_VERSION,
        "proto": proto,
        "id": s.id,
        "mode": "standalone",
        "role": "master",
        "modules": [],
    }


async def cmd_auth(c: Commands, s: Session, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise ErrorReply(SYNTAX)
    username = argv[1].decode("utf-8", "replace") if len(argv) == 3 else None
    await c.authenticate(s, username, argv[-1].decode("utf-8", "replace"))
    return OK


def _client_name(raw: bytes) -> str:
    if any(b <= 32 or b >= 127 for b in raw):
        raise ErrorReply("ERR Client names cannot contain spaces, newlines or special characters.")
    return raw.decode()


async def cmd_client(c: Commands, s: Session, argv: list[bytes]) -> Any:
    sub = _subcommand(CLIENT, argv)
    name = sub.name.split("|")[1]
    if name == "setname":
        s.name = _client_name(argv[2]) or None
        return OK
    if name == "getname":
        return s.name
    if name == "id":
        return s.id
    attr = argv[2].upper()
    if attr == b"LIB-NAME":
        s.lib_name = _client_name(argv[3])
    elif attr == b"LIB-VER":
        s.lib_ver = _client_name(argv[3])
    else:
        raise ErrorReply(f"ERR Unrecognized option '{argv[2].decode(errors='replace')}'")
    return OK


def _subcommand(container: Spec, argv: list[bytes]) -> Spec:
    wanted = f"{container.name}|{argv[1].decode('utf-8', 'replace').lower()}"
    for sub in container.subcommands:
        if sub.name == wanted:
            if not sub.arity_ok(len(argv)):
                raise wrong_arity(sub.name)
            return sub
    raise unknown_subcommand(container.name, argv[1])


async def cmd_select(c: Commands, s: Session, argv: list[bytes]) -> Any:
    index = parse_int(argv[1])
    if index != 0:
        raise ErrorReply("ERR DB index is out of range")
    return OK


async def cmd_quit(c: Commands, s: Session, argv: list[bytes]) -> Any:
    s.close()
    return OK


# --- server ---------------------------------------------------------------------------


async def cmd_command(c: Commands, s: Session, argv: list[bytes]) -> Any:
    if len(argv) == 1:
        return [command_info(spec) for spec in COMMANDS]
    sub = _subcommand(COMMAND, argv)
    wanted = [a.decode("utf-8", "replace").lower() for a in argv[2:]]
    specs = {spec.name: spec for spec in COMMANDS}
    if sub.name == "command|count":
        return len(COMMANDS)
    if sub.name == "command|info":
        if not wanted:
            return [command_info(spec) for spec in COMMANDS]
        return [command_info(specs[n]) if n in specs else None for n in wanted]
    chosen = [specs[n] for n in wanted if n in specs] if wanted else COMMANDS
    return {spec.name: command_docs(spec) for spec in chosen}


async def cmd_config(c: Commands, s: Session, argv: list[bytes]) -> Any:
    _subcommand(CONFIG, argv)
    known = {"appendonly": "yes", "save": "", "databases": "1"}
    out: dict[str, str] = {}
    for raw in argv[2:]:
        regex = compile_glob(raw.decode("utf-8", "replace").lower())
        out.update({k: v for k, v in known.items() if regex.fullmatch(k)})
    return out


async def cmd_dbsize(c: Commands, s: Session, argv: list[bytes]) -> Any:
    reply = await c.call(s, "ns_list")
    return sum(item.get("entries", 0) for item in reply["namespaces"] if _data_ns(item["name"]))


def _data_ns(name: str) -> bool:
    return not name.startswith("_")


async def cmd_info(c: Commands, s: Session, argv: list[bytes]) -> Any:
    wanted = {a.decode("utf-8", "replace").lower() for a in argv[1:]}
    everything = not wanted or wanted & {"all", "everything", "default"}
    ping = await c.call(s, "ping")
    stats = c._server_stats()
    sections: dict[str, dict[str, Any]] = {
        "server": {
            "redis_version": REDIS_VERSION,
            "redis_mode": "standalone",
            "swarmnode_version": __version__,
            "swarmnode_node_id": ping["node_id"],
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "arch_bits": 64 if sys.maxsize > 2**32 else 32,
            "process_id": os.getpid(),
            "tcp_port": stats.get("tcp_port", 0),
            "uptime_in_seconds": int(c._clock() - c.started),
        },
        "clients": {
            "connected_clients": stats.get("connections_open", 0),
            "maxclients": c.limits.max_connections,
        },
        "stats": {
            "total_connections_received": stats.get("connections_total", 0),
            "total_commands_processed": sum(c.calls.values()),
            "rejected_connections": stats.get("connections_refused", 0),
            "total_error_replies": sum(c.errors.values()),
        },
        "persistence": {"loading": 0, "aof_enabled": 1},
    }
    if everything or "keyspace" in wanted:
        keys = await cmd_dbsize(c, s, argv)
        sections["keyspace"] = {"db0": f"keys={keys},expires=0,avg_ttl=0"} if keys else {}
    lines = []
    for section, fields in sections.items():
        if everything or section in wanted:
            lines.append(f"# {section.capitalize()}")
            lines.extend(f"{k}:{v}" for k, v in fields.items())
            lines.append("")
    return Verbatim("\r\n".join(lines))


# --- strings ------------------------------------------------------------------------------


async def _get_view(c: Commands, s: Session, raw: bytes) -> dict[str, Any] | None:
    ns, key = c.keys.resolve_now(raw) or await c.keys.resolve(raw)
    return await c.call_quiet(s, "get", ns=ns, key=key)


async def cmd_get(c: Commands, s: Session, argv: list[bytes]) -> Any:
    view = await _get_view(c, s, argv[1])
    if view is None:
        return None
    if view["type"] == "set":
        raise ErrorReply(WRONGTYPE)
    return reply_value(view)


async def cmd_set(c: Commands, s: Session, argv: list[bytes]) -> Any:
    raw = argv[1]
    ns, key = c.keys.resolve_now(raw) or await c.keys.resolve(raw)
    args: dict[str, Any] = {"ns": ns, "key": key, "value": stored_value(argv[2])}
    get = False
    condition = expiry = None
    i = 3
    while i < len(argv):
        option = argv[i].upper()
        if option in (b"NX", b"XX") and condition in (None, option):
            condition = option
        elif option == b"GET":
            get = True
        elif option in (b"EX", b"PX", b"EXAT", b"PXAT") and expiry is None and i + 1 < len(argv):
            expiry = option
            i += 1
            args["ttl"] = _expiry_seconds(option, parse_int(argv[i]), "set")
        elif option == b"KEEPTTL" and expiry in (None, option):
            expiry = option
            args["keep_ttl"] = True
        else:
            raise ErrorReply(SYNTAX)
        i += 1
    if condition == b"NX":
        args["if_absent"] = True
    elif condition == b"XX":
        args["if_exists"] = True
    old = None
    if get:
        view = await c.call_quiet(s, "get", ns=ns, key=key)
        if view is not None:
            if view["type"] == "set":
                raise ErrorReply(WRONGTYPE)
            old = reply_value(view)
    try:
        await c.dispatch("put", args, s.ctx)
    except SwarmError as exc:
        if exc.code in ("conflict", "not_found") and condition is not None:
            return old
        raise
    return old if get else OK


def _expiry_seconds(option: bytes, amount: int, command: str) -> float:
    """SET's and GETEX's EX/PX/EXAT/PXAT as a TTL in seconds for the node."""
    if amount <= 0:
        raise ErrorReply(f"ERR invalid expire time in '{command}' command")
    if option == b"EX":
        return float(amount)
    if option == b"PX":
        return amount / 1000
    at_ms = amount * 1000 if option == b"EXAT" else amount
    return max(at_ms - wall_ms(), 1) / 1000


async def cmd_mget(c: Commands, s: Session, argv: list[bytes]) -> Any:
    out: list[bytes | None] = []
    for raw in argv[1:]:
        view = await _get_view(c, s, raw)
        out.append(None if view is None or view["type"] == "set" else reply_value(view))
    return out


async def cmd_mset(c: Commands, s: Session, argv: list[bytes]) -> Any:
    if len(argv) % 2 == 0:
        raise wrong_arity("mset")
    writes = []
    for i in range(1, len(argv), 2):
        ns, key = await c.keys.resolve(argv[i])
        writes.append(c.call(s, "put", ns=ns, key=key, value=stored_value(argv[i + 1])))
    await _together(writes)
    return OK


async def _together(calls: list[Awaitable[Any]]) -> list[Any]:
    """Node operations started together (so their writes share group commits); the first
    error is raised once all have finished."""
    if len(calls) == 1:
        return [await calls[0]]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def cmd_incrby(c: Commands, s: Session, argv: list[bytes]) -> Any:
    name = argv[0].lower()
    by = 1 if name in (b"incr", b"decr") else parse_int(argv[2])
    if name.startswith(b"decr"):
        by = -by
    ns, key = await c.keys.resolve(argv[1])
    try:
        result = await c.call(s, "incr", ns=ns, key=key, by=by)
    except SwarmError as exc:
        if exc.code == "bad_request" and "overflow" in exc.message:
            raise ErrorReply("ERR increment or decrement would overflow") from None
        if exc.code == "bad_request" and "between" in exc.message:
            raise ErrorReply(NOT_INTEGER) from None
        raise
    return result["value"]


# --- keys -------------------------------------------------------------------------------


async def cmd_del(c: Commands, s: Session, argv: list[bytes]) -> Any:
    calls = []
    for raw in argv[1:]:
        ns, key = await c.keys.resolve(raw)
        calls.append(c.call(s, "delete", ns=ns, key=key))
    results = await _together(calls)
    return sum(1 for r in results if r["deleted"])


async def cmd_exists(c: Commands, s: Session, argv: list[bytes]) -> Any:
    count = 0
    for raw in argv[1:]:
        if await _get_view(c, s, raw) is not None:
            count += 1
    return count


async def cmd_type(c: Commands, s: Session, argv: list[bytes]) -> Any:
    view = await _get_view(c, s, argv[1])
    if view is not None:
        return SimpleString(redis_type(view))
    name = argv[1].decode("utf-8", "replace")
    if await c.keys.dim(name) is not None:
        return SimpleString("vectorset")
    return SimpleString("none")


async def cmd_expire(c: Commands, s: Session, argv: list[bytes]) -> Any:
    amount = parse_int(argv[2])
    flags = {a.upper() for a in argv[3:]}
    if flags - {b"NX", b"XX", b"GT", b"LT"}:
        bad = next(a for a in argv[3:] if a.upper() not in (b"NX", b"XX", b"GT", b"LT"))
        raise ErrorReply(f"ERR Unsupported option {bad.decode(errors='replace')}")
    if b"NX" in flags and flags & {b"XX", b"GT", b"LT"}:
        raise ErrorReply("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {b"GT", b"LT"} <= flags:
        raise ErrorReply("ERR GT and LT options at the same time are not compatible")
    ms = amount * 1000 if argv[0].lower() == b"expire" else amount
    ns, key = await c.keys.resolve(argv[1])
    if flags:
        view = await c.call_quiet(s, "get", ns=ns, key=key)
        if view is None:
            return 0
        current = view["expires_at"]
        new_at = wall_ms() + ms
        if b"NX" in flags and current is not None:
            return 0
        if b"XX" in flags and current is None:
            return 0
        if b"GT" in flags and (current is None or new_at <= current):
            return 0
        if b"LT" in flags and current is not None and new_at >= current:
            return 0
    if ms <= 0:
        result = await c.call(s, "delete", ns=ns, key=key)
        return int(result["deleted"])
    try:
        await c.call(s, "expire", ns=ns, key=key, ttl=ms / 1000)
    except SwarmError as exc:
        if exc.code == "not_found":
            return 0
        raise
    return 1


async def cmd_ttl(c: Commands, s: Session, argv: list[bytes]) -> Any:
    view = await _get_view(c, s, argv[1])
    if view is None:
        return -2
    expires_at = view["expires_at"]
    if expires_at is None:
        return -1
    left = max(expires_at - wall_ms(), 0)
    return left if argv[0].lower() == b"pttl" else (left + 500) // 1000


async def cmd_persist(c: Commands, s: Session, argv: list[bytes]) -> Any:
    ns, key = await c.keys.resolve(argv[1])
    view = await c.call_quiet(s, "get", ns=ns, key=key)
    if view is None or view["expires_at"] is None:
        return 0
    try:
        await c.call(s, "expire", ns=ns, key=key, ttl=0)
    except SwarmError as exc:
        if exc.code == "not_found":
            return 0
        raise
    return 1


async def _walk(
    c: Commands,
    s: Session,
    state: ScanState,
    pattern: str | None,
    kind: str | None,
    budget: int,
) -> list[bytes]:
    """Up to about `budget` keys from `state` on, advancing it; names that match."""
    regex = compile_glob(pattern) if pattern is not None else None
    lit = literal_prefix(pattern) if pattern is not None else ""
    found: list[bytes] = []
    names = await c.keys.namespaces()
    while budget > 0 and state.index < len(state.namespaces):
        ns = state.namespaces[state.index]
        prefix = _list_prefix(ns, lit)
        if prefix is None:
            state.index += 1
            state.after = None
            continue
        args: dict[str, Any] = {"ns": ns, "limit": min(budget, SCAN_PAGE)}
        if prefix:
            args["prefix"] = prefix
        if state.after is not None:
            args["cursor"] = state.after
        page = await c.call(s, "list", **args)
        budget -= max(1, len(page["items"]))
        for item in page["items"]:
            name = redis_name(ns, item["key"])
            if ns == DEFAULT_NS and _shadowed(name, names):
                continue
            if regex is not None and not regex.fullmatch(name):
                continue
            if kind is not None and redis_type(item) != kind:
                continue
            found.append(name.encode())
        if page["cursor"] is None:
            state.index += 1
            state.after = None
        else:
            state.after = page["cursor"]
    return found


def _list_prefix(ns: str, lit: str) -> str | None:
    """The key prefix to list `ns` with for names starting with `lit` (None: no match)."""
    if ns == DEFAULT_NS:
        return lit
    head = f"{ns}:"
    if lit.startswith(head):
        return lit[len(head) :]
    return "" if head.startswith(lit) else None


def _shadowed(name: str, namespaces: frozenset[str]) -> bool:
    """A `default` key named `ns:rest` where namespace `ns` exists: its name reaches `ns`."""
    colon = name.find(":")
    return 0 < colon < len(name) - 1 and name[:colon] in namespaces


async def _scan_namespaces(c: Commands, s: Session) -> tuple[str, ...]:
    """The namespaces a new SCAN or KEYS walks: those holding live entries, in name order."""
    c.keys.invalidate()
    reply = await c.call(s, "ns_list")
    return tuple(
        sorted(
            item["name"]
            for item in reply["namespaces"]
            if _data_ns(item["name"]) and item.get("entries", 0) > 0
        )
    )


async def cmd_scan(c: Commands, s: Session, argv: list[bytes]) -> Any:
    cursor = parse_int(argv[1], "ERR invalid cursor")
    pattern = kind = None
    count = 10
    i = 2
    while i < len(argv):
        option = argv[i].upper()
        if i + 1 >= len(argv):
            raise ErrorReply(SYNTAX)
        if option == b"MATCH":
            pattern = argv[i + 1].decode("utf-8", "surrogateescape")
        elif option == b"COUNT":
            count = parse_int(argv[i + 1])
            if count < 1:
                raise ErrorReply(SYNTAX)
        elif option == b"TYPE":
            kind = argv[i + 1].decode("utf-8", "replace").lower()
        else:
            raise ErrorReply(SYNTAX)
        i += 2
    if cursor == 0:
        state = ScanState(await _scan_namespaces(c, s), 0, None)
    else:
        taken = c.cursors.take(cursor)
        if taken is None:
            raise ErrorReply("ERR invalid cursor")
        state = taken
    found = await _walk(c, s, state, pattern, kind, min(count, SCAN_PAGE))
    done = state.index >= len(state.namespaces)
    return [b"0" if done else str(c.cursors.keep(state)).encode(), found]


async def cmd_keys(c: Commands, s: Session, argv: list[bytes]) -> Any:
    pattern = argv[1].decode("utf-8", "surrogateescape")
    state = ScanState(await _scan_namespaces(c, s), 0, None)
    found: list[bytes] = []
    while state.index < len(state.namespaces):
        found.extend(await _walk(c, s, state, pattern, None, SCAN_PAGE))
    return found


# --- sets ---------------------------------------------------------------------------------


def _members(argv: list[bytes]) -> list[str]:
    try:
        return [m.decode() for m in argv]
    except UnicodeDecodeError:
        raise ErrorReply("ERR set members must be UTF-8 text") from None


async def cmd_sadd(c: Commands, s: Session, argv: list[bytes]) -> Any:
    ns, key = await c.keys.resolve(argv[1])
    result = await c.call(s, "sadd", ns=ns, key=key, members=_members(argv[2:]))
    return result["added"]


async def cmd_srem(c: Commands, s: Session, argv: list[bytes]) -> Any:
    ns, key = await c.keys.resolve(argv[1])
    result = await c.call(s, "srem", ns=ns, key=key, members=_members(argv[2:]))
    return result["removed"]


async def _set_members(c: Commands, s: Session, raw: bytes) -> list[str]:
    ns, key = await c.keys.resolve(raw)
    try:
        result = await c.call(s, "smembers", ns=ns, key=key)
    except SwarmError as exc:
        if exc.code == "not_found":
            return []
        raise
    return result["members"]


async def cmd_smembers(c: Commands, s: Session, argv: list[bytes]) -> Any:
    return {m.encode() for m in await _set_members(c, s, argv[1])}


async def cmd_sismember(c: Commands, s: Session, argv: list[bytes]) -> Any:
    member = argv[2].decode("utf-8", "surrogateescape")
    return int(member in await _set_members(c, s, argv[1]))


async def cmd_scard(c: Commands, s: Session, argv: list[bytes]) -> Any:
    return len(await _set_members(c, s, argv[1]))


# --- pub/sub ------------------------------------------------------------------------------


def _subscriptions(c: Commands, s: Session) -> Subscriptions:
    if s.subscriptions is None:

        async def open_watch() -> AsyncIterator[dict[str, Any]]:
            return await c.call(s, "watch", values=False)

        def lost(reason: str) -> None:
            s.push(ErrorReply(f"ERR keyspace notifications lost: {reason}"))
            s.disconnect()

        s.subscriptions = Subscriptions(open_watch, s.push, lost)
    return s.subscriptions


async def cmd_subscribe(c: Commands, s: Session, argv: list[bytes]) -> Any:
    return await _subscriptions(c, s).subscribe(argv[1:])


async def cmd_psubscribe(c: Commands, s: Session, argv: list[bytes]) -> Any:
    return await _subscriptions(c, s).psubscribe(argv[1:])


async def cmd_unsubscribe(c: Commands, s: Session, argv: list[bytes]) -> Any:
    return await _subscriptions(c, s).unsubscribe(argv[1:])


async def cmd_punsubscribe(c: Commands, s: Session, argv: list[bytes]) -> Any:
    return await _subscriptions(c, s).punsubscribe(argv[1:])


# --- the table ------------------------------------------------------------------------

CLIENT = Spec(
    "client",
    -2,
    "A container for client connection commands.",
    "",
    "connection",
    "none (connection state)",
    since="2.4.0",
    subcommands=(
        Spec("client|setname", 3, "Sets the connection name.", "connection-name",
             "connection", "none", ("no_auth", "fast"), since="2.6.9"),
        Spec("client|getname", 2, "Returns the name of the connection.", "", "connection",
             "none", ("no_auth", "fast"), since="2.6.9"),
        Spec("client|id", 2, "Returns the unique client ID of the connection.", "",
             "connection", "none", ("no_auth", "fast"), since="5.0.0"),
        Spec("client|setinfo", 4, "Sets information specific to the client or connection.",
             "(LIB-NAME libname | LIB-VER libver)", "connection", "none", ("no_auth", "fast"),
             since="7.2.0"),
    ),
    handler=cmd_client,
)  # fmt: skip

COMMAND = Spec(
    "command",
    -1,
    "Returns detailed information about all commands.",
    "",
    "server",
    "none (the command table)",
    ("loading", "stale"),
    since="2.8.13",
    complexity="O(N) where N is the total number of commands",
    subcommands=(
        Spec("command|count", 2, "Returns a count of commands.", "", "server", "none",
             ("loading", "stale"), since="2.8.13"),
        Spec("command|docs", -2, "Returns documentary information about one, multiple or all "
             "commands.", "[command-name ...]", "server", "none", ("loading", "stale"),
             since="7.0.0"),
        Spec("command|info", -2, "Returns information about one, multiple or all commands.",
             "[command-name ...]", "server", "none", ("loading", "stale"), since="2.8.13"),
    ),
    handler=cmd_command,
)  # fmt: skip

CONFIG = Spec(
    "config",
    -2,
    "A container for server configuration commands.",
    "",
    "server",
    "none",
    since="2.0.0",
    subcommands=(
        Spec("config|get", -3, "Returns the effective values of configuration parameters "
             "(appendonly, save and databases; tools such as redis-benchmark ask for them).",
             "parameter ...", "server", "none", ("loading", "stale"), since="2.0.0"),
    ),
    handler=cmd_config,
)  # fmt: skip

COMMANDS: tuple[Spec, ...] = (
    Spec("ping", -1, "Returns the server's liveliness response.", "[message]", "connection",
         "none", ("fast",), handler=cmd_ping),
    Spec("echo", 2, "Returns the given string.", "message", "connection", "none",
         ("fast",), handler=cmd_echo),
    Spec("hello", -1, "Handshakes with the server: protocol version, authentication, name.",
         "[protover [AUTH username password] [SETNAME clientname]]", "connection", "none",
         ("no_auth", "fast"), since="6.0.0", handler=cmd_hello),
    Spec("auth", -2, "Authenticates the connection.", "[username] password", "connection",
         "the authenticate hook", ("no_auth", "fast"), handler=cmd_auth),
    CLIENT,
    Spec("select", 2, "Changes the selected database (only 0 exists).", "index",
         "connection", "none", ("fast",), handler=cmd_select),
    Spec("quit", -1, "Closes the connection.", "", "connection", "none",
         ("no_auth", "fast"), handler=cmd_quit),
    COMMAND,
    CONFIG,
    Spec("info", -1, "Returns information and statistics about the server.",
         "[section ...]", "server", "ping, ns_list, server stats", ("loading", "stale"),
         handler=cmd_info),
    Spec("dbsize", 1, "Returns the number of keys.", "", "server", "ns_list",
         ("readonly", "fast"), handler=cmd_dbsize),
    Spec("get", 2, "Returns the string value of a key.", "key", "string", "get",
         ("readonly", "fast"), (1, 1, 1), handler=cmd_get),
    Spec("set", -3, "Sets the string value of a key, ignoring its type. The key is created "
         "if it doesn't exist.",
         "key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | "
         "PXAT unix-time-milliseconds | KEEPTTL]",
         "string", "put (ttl, if_absent, if_exists, keep_ttl); get for GET",
         ("write", "denyoom"), (1, 1, 1), handler=cmd_set),
    Spec("mget", -2, "Atomically returns the string values of one or more keys.", "key ...",
         "string", "get per key", ("readonly", "fast"), (1, -1, 1),
         complexity="O(N) where N is the number of keys to retrieve.", handler=cmd_mget),
    Spec("mset", -3, "Creates or modifies the string values of one or more keys.",
         "key value [key value ...]", "string", "put per key, started together",
         ("write", "denyoom"), (1, -1, 2), since="1.0.1",
         complexity="O(N) where N is the number of keys to set.", handler=cmd_mset),
    Spec("incr", 2, "Increments the integer value of a key by one.", "key", "string",
         "incr by=1", ("write", "denyoom", "fast"), (1, 1, 1), handler=cmd_incrby),
    Spec("incrby", 3, "Increments the integer value of a key by a number.", "key increment",
         "string", "incr", ("write", "denyoom", "fast"), (1, 1, 1), handler=cmd_incrby),
    Spec("decr", 2, "Decrements the integer value of a key by one.", "key", "string",
         "incr by=-1", ("write", "denyoom", "fast"), (1, 1, 1), handler=cmd_incrby),
    Spec("decrby", 3, "Decrements a number from the integer value of a key.",
         "key decrement", "string", "incr by=-n", ("write", "denyoom", "fast"), (1, 1, 1),
         handler=cmd_incrby),
    Spec("del", -2, "Deletes one or more keys.", "key ...", "generic", "delete per key",
         ("write",), (1, -1, 1), handler=cmd_del),
    Spec("unlink", -2, "Deletes one or more keys (the same as DEL here).", "key ...",
         "generic", "delete per key", ("write", "fast"), (1, -1, 1), since="4.0.0",
         handler=cmd_del),
    Spec("exists", -2, "Determines whether one or more keys exist.", "key ...", "generic",
         "get per key", ("readonly", "fast"), (1, -1, 1), since="1.0.0", handler=cmd_exists),
    Spec("type", 2, "Determines the type of value stored at a key.", "key", "generic",
         "get; ns_list for vector sets", ("readonly", "fast"), (1, 1, 1), handler=cmd_type),
    Spec("expire", -3, "Sets the expiration time of a key in seconds.",
         "key seconds [NX | XX | GT | LT]", "generic", "expire; delete when not positive; "
         "get for NX/XX/GT/LT", ("write", "fast"), (1, 1, 1), handler=cmd_expire),
    Spec("pexpire", -3, "Sets the expiration time of a key in milliseconds.",
         "key milliseconds [NX | XX | GT | LT]", "generic", "expire; delete when not "
         "positive; get for NX/XX/GT/LT", ("write", "fast"), (1, 1, 1), since="2.6.0",
         handler=cmd_expire),
    Spec("ttl", 2, "Returns the expiration time in seconds of a key.", "key", "generic",
         "get", ("readonly", "fast"), (1, 1, 1), handler=cmd_ttl),
    Spec("pttl", 2, "Returns the expiration time in milliseconds of a key.", "key",
         "generic", "get", ("readonly", "fast"), (1, 1, 1), since="2.6.0", handler=cmd_ttl),
    Spec("persist", 2, "Removes the expiration time of a key.", "key", "generic",
         "get, then expire ttl=0", ("write", "fast"), (1, 1, 1), since="2.2.0",
         handler=cmd_persist),
    Spec("scan", -2, "Iterates over the key names in the database.",
         "cursor [MATCH pattern] [COUNT count] [TYPE type]", "generic",
         "ns_list, then list per namespace", ("readonly",), since="2.8.0",
         complexity="O(1) for every call. O(N) for a complete iteration.", handler=cmd_scan),
    Spec("keys", 2, "Returns all key names that match a pattern.", "pattern", "generic",
         "ns_list, then list per namespace", ("readonly",),
         complexity="O(N) with N being the number of keys in the database",
         handler=cmd_keys),
    Spec("sadd", -3, "Adds one or more members to a set.", "key member ...", "set", "sadd",
         ("write", "denyoom", "fast"), (1, 1, 1), handler=cmd_sadd),
    Spec("srem", -3, "Removes one or more members from a set.", "key member ...", "set",
         "srem", ("write", "fast"), (1, 1, 1), handler=cmd_srem),
    Spec("smembers", 2, "Returns all members of a set.", "key", "set", "smembers",
         ("readonly",), (1, 1, 1), complexity="O(N) where N is the set cardinality.",
         handler=cmd_smembers),
    Spec("sismember", 3, "Determines whether a member belongs to a set.", "key member",
         "set", "smembers", ("readonly",), (1, 1, 1),
         complexity="O(N) here (the set is read whole)", handler=cmd_sismember),
    Spec("scard", 2, "Returns the number of members in a set.", "key", "set", "smembers",
         ("readonly",), (1, 1, 1), complexity="O(N) here (the set is read whole)",
         handler=cmd_scard),
    Spec("subscribe", -2, "Listens for messages published to channels (keyspace and keyevent "
         "notifications).", "channel ...", "pubsub", "watch",
         ("pubsub", "loading", "stale"), since="2.0.0", handler=cmd_subscribe),
    Spec("psubscribe", -2, "Listens for messages published to channels that match patterns.",
         "pattern ...", "pubsub", "watch", ("pubsub", "loading", "stale"), since="2.0.0",
         handler=cmd_psubscribe),
    Spec("unsubscribe", -1, "Stops listening to messages posted to channels.",
         "[channel ...]", "pubsub", "ends the watch with the last subscription",
         ("pubsub", "loading", "stale"), since="2.0.0", handler=cmd_unsubscribe),
    Spec("punsubscribe", -1, "Stops listening to messages published to channels that match "
         "patterns.", "[pattern ...]", "pubsub", "ends the watch with the last subscription",
         ("pubsub", "loading", "stale"), since="2.0.0", handler=cmd_punsubscribe),
    *vsets.SPECS,
)  # fmt: skip
