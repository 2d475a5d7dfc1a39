"""The command table as the server dispatches it: one lookup per command, checks precomputed.

`Spec` describes a command for COMMAND, COMMAND DOCS and the docs; a `Route`
holds what running it needs, worked out once instead of per command: the
handler, the arity as bounds, whether it needs authentication, whether a
RESP2 subscriber may send it, and whether it is a blind write.

A blind write hands the node exactly one write before it first waits, with
nothing read first: SET without GET, INCR and friends, SADD, SREM, a one-key
DEL or UNLINK, EXPIRE without conditions. The server lets one start while only
blind writes are still running (see server.py), so pipelined writes share
group commits.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from swarmnode.resp.table import Spec

SUBSCRIBED_OK = frozenset(
    {"subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset"}
)
"""What a RESP2 connection in subscriber mode may still send."""

Blind = Callable[[list[bytes]], bool]


def _always(argv: list[bytes]) -> bool:
    return True


def _set_without_get(argv: list[bytes]) -> bool:
    return len(argv) == 3 or not any(a.upper() == b"GET" for a in argv[3:])


def _one_key(argv: list[bytes]) -> bool:
    return len(argv) == 2


def _no_conditions(argv: list[bytes]) -> bool:
    return len(argv) == 3


BLIND_WRITES: dict[str, Blind] = {
    "set": _set_without_get,
    "incr": _always,
    "incrby": _always,
    "decr": _always,
    "decrby": _always,
    "sadd": _always,
    "srem": _always,
    "del": _one_key,
    "unlink": _one_key,
    "expire": _no_conditions,
    "pexpire": _no_conditions,
}
"""Commands that can be blind writes, with the test that says whether this one is."""


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    handler: Callable[..., Coroutine[Any, Any, Any]]
    min_args: int
    max_args: int
    gated: bool
    """Refused (NOAUTH) before the connection authenticates."""
    subscribed_ok: bool
    blind: Blind | None


def route_of(spec: Spec) -> Route:
    if spec.handler is None:
        raise ValueError(f"command {spec.name} has no handler")
    min_args, max_args = spec.arity_bounds
    return Route(
        name=spec.name,
        handler=spec.handler,  # type: ignore[arg-type]
        min_args=min_args,
        max_args=max_args,
        gated="no_auth" not in spec.flags,
        subscribed_ok=spec.name in SUBSCRIBED_OK,
        blind=BLIND_WRITES.get(spec.name),
    )


def routes(specs: Iterable[Spec]) -> dict[bytes, Route]:
    """Routes by command name, in lower and upper case (most clients send one of them)."""
    table: dict[bytes, Route] = {}
    for spec in specs:
        route = route_of(spec)
        name = spec.name.encode()
        table[name] = table[name.upper()] = route
    return table
