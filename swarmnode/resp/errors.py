"""The error replies a Redis client expects, and the node's error codes translated to them."""

from __future__ import annotations

from swarmnode.errors import SwarmError
from swarmnode.resp.codec import ErrorReply

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"

_PREFIX = {
    "unavailable": "UNAVAILABLE",
    "forbidden": "NOPERM",
}


def translate(exc: SwarmError) -> ErrorReply:
    """The reply for a node error: WRONGTYPE as Redis words it, otherwise the node's message
    under `ERR`, or under `UNAVAILABLE`/`NOPERM` for the codes clients may want to tell apart."""
    if exc.code == "wrong_type":
        return ErrorReply(WRONGTYPE)
    if exc.code == "internal":
        return ErrorReply(f"ERR internal error: {exc.message}")
    prefix = _PREFIX.get(exc.code, "ERR")
    return ErrorReply(f"{prefix} {exc.message}")


def wrong_arity(name: str) -> ErrorReply:
    return ErrorReply(f"ERR wrong number of arguments for '{name}' command")


def unknown_command(argv: list[bytes]) -> ErrorReply:
    """Redis's text: the name as sent, then up to 128 characters of its first arguments."""
    args = ""
    for arg in argv[1:]:
        if len(args) >= 128:
            break
        args += f"'{_printable(arg)[: 128 - len(args)]}' "
    return ErrorReply(
        f"ERR unknown command '{_printable(argv[0])[:128]}', with args beginning with: {args}"
    )


def unknown_subcommand(container: str, sub: bytes) -> ErrorReply:
    return ErrorReply(
        f"ERR unknown subcommand '{_printable(sub)[:128]}'. Try {container.upper()} HELP."
    )


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)
