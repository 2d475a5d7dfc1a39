"""The command table's entries and what is derived from them: COMMAND, COMMAND INFO, COMMAND
DOCS (redis-cli's hints and `help`), arity checks, and the docs' compatibility table.

A command is described once, as data: its name, arity and flags as Redis counts
them, where its keys are, its group and summary, and its syntax written the way
the Redis documentation writes it (`key value [NX | XX] [EX seconds | PX
milliseconds]`). The syntax is parsed into the argument tree COMMAND DOCS
returns, so the hints redis-cli shows are the table itself, not a second list.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from swarmnode.resp.codec import SimpleString

INTEGER_ARGS = frozenset(
    {
        "seconds",
        "milliseconds",
        "count",
        "cursor",
        "increment",
        "decrement",
        "protover",
        "dim",
        "num",
        "numlinks",
        "exploration-factor",
        "effort",
    }
)
DOUBLE_ARGS = frozenset({"component", "delta"})
PATTERN_ARGS = frozenset({"pattern"})
UNIX_TIME_ARGS = frozenset({"unix-time-seconds", "unix-time-milliseconds"})

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Spec:
    """One command (or subcommand, named `container|sub`) as Redis describes its own."""

    name: str
    arity: int
    """Redis's convention: the exact argument count including the name, or -N for at least N."""
    summary: str
    syntax: str
    group: str
    maps_to: str
    """The node operations it uses (for the documentation)."""
    flags: tuple[str, ...] = ()
    keys: tuple[int, int, int] = (0, 0, 0)
    """First key position, last (-1: the last argument), step."""
    since: str = "1.0.0"
    complexity: str = "O(1)"
    subcommands: tuple[Spec, ...] = ()
    handler: Handler | None = field(default=None, compare=False)

    @property
    def arguments(self) -> list[dict[str, Any]]:
        return parse_syntax(self.syntax)

    @property
    def arity_bounds(self) -> tuple[int, int]:
        """The least and the most arguments (the name included) the arity allows."""
        return (self.arity, self.arity) if self.arity >= 0 else (-self.arity, sys.maxsize)

    def arity_ok(self, argc: int) -> bool:
        low, high = self.arity_bounds
        return low <= argc <= high


# --- syntax to COMMAND DOCS arguments ------------------------------------------------

_TOKEN_RE = re.compile(r"\.\.\.|[\[\]()|]|[^\s\[\]()|]+")


def parse_syntax(syntax: str) -> list[dict[str, Any]]:
    """The COMMAND DOCS argument list of a syntax line."""
    # `[a b ...]` repeats the bracketed group: the same as `[a b]...`, which parses simply.
    tokens = _TOKEN_RE.findall(syntax.replace(" ...]", "]..."))
    args, pos = _alternatives(tokens, 0, key_index=[0])
    if pos != len(tokens):
        raise ValueError(f"unbalanced syntax {syntax!r} at {tokens[pos]!r}")
    if len(args) != 1:
        raise ValueError(f"a syntax line cannot be a top-level choice: {syntax!r}")
    return args[0]


def _alternatives(
    tokens: list[str], pos: int, key_index: list[int]
) -> tuple[list[list[dict[str, Any]]], int]:
    options = []
    seq, pos = _sequence(tokens, pos, key_index)
    options.append(seq)
    while pos < len(tokens) and tokens[pos] == "|":
        seq, pos = _sequence(tokens, pos + 1, key_index)
        options.append(seq)
    return options, pos


def _sequence(
    tokens: list[str], pos: int, key_index: list[int]
) -> tuple[list[dict[str, Any]], int]:
    seq: list[dict[str, Any]] = []
    while pos < len(tokens) and tokens[pos] not in ("]", ")", "|"):
        tok = tokens[pos]
        if tok in ("[", "("):
            close = "]" if tok == "[" else ")"
            options, pos = _alternatives(tokens, pos + 1, key_index)
            if pos >= len(tokens) or tokens[pos] != close:
                raise ValueError(f"missing {close!r}")
            pos += 1
            arg = _group(options)
            if tok == "[":
                arg.setdefault("flags", []).append("optional")
        elif tok.isupper() and not tok.islower():
            pos += 1
            if pos < len(tokens) and _is_name(tokens[pos]):
                arg = _named(tokens[pos], key_index)
                arg["token"] = tok
                pos += 1
            else:
                arg = {"name": tok.lower(), "type": "pure-token", "token": tok}
        elif tok == "...":
            raise ValueError("'...' must follow an argument")
        else:
            arg = _named(tok, key_index)
            pos += 1
        if pos < len(tokens) and tokens[pos] == "...":
            arg.setdefault("flags", []).append("multiple")
            pos += 1
        seq.append(arg)
    return seq, pos


def _is_name(tok: str) -> bool:
    return tok not in ("[", "]", "(", ")", "|", "...") and not (tok.isupper() and not tok.islower())


def _named(name: str, key_index: list[int]) -> dict[str, Any]:
    if name == "key":
        arg = {"name": "key", "type": "key", "key_spec_index": key_index[0]}
        return arg
    if name in INTEGER_ARGS:
        kind = "integer"
    elif name in DOUBLE_ARGS:
        kind = "double"
    elif name in PATTERN_ARGS:
        kind = "pattern"
    elif name in UNIX_TIME_ARGS:
        kind = "unix-time"
    else:
        kind = "string"
    return {"name": name, "type": kind}


def _group(options: list[list[dict[str, Any]]]) -> dict[str, Any]:
    if len(options) > 1:
        return {
            "name": _group_name(options),
            "type": "oneof",
            "arguments": [_block(seq) for seq in options],
        }
    return _block(options[0])


def _block(seq: list[dict[str, Any]]) -> dict[str, Any]:
    if len(seq) == 1:
        return seq[0]
    return {"name": "-".join(a["name"] for a in seq[:2]), "type": "block", "arguments": seq}


def _group_name(options: list[list[dict[str, Any]]]) -> str:
    """`nx-xx` for `[NX | XX]`: the first two choices, by token where they have one."""
    return "-".join(seq[0].get("token", seq[0]["name"]).lower() for seq in options[:2] if seq)


# --- the replies that describe commands ----------------------------------------------


def command_info(spec: Spec) -> list[Any]:
    """One COMMAND / COMMAND INFO entry (Redis 7's ten fields)."""
    first, last, step = spec.keys
    key_specs: list[Any] = []
    if first:
        key_specs.append(
            {
                "begin_search": {"type": "index", "spec": {"index": first}},
                "find_keys": {
                    "type": "range",
                    "spec": {"lastkey": last if last < 0 else last - first, "keystep": step,
                             "limit": 0},
                },
            }
        )  # fmt: skip
    return [
        spec.name,
        spec.arity,
        {SimpleString(f) for f in spec.flags},
        first,
        last,
        step,
        {SimpleString("@" + spec.group)},
        [],
        key_specs,
        [command_info(sub) for sub in spec.subcommands],
    ]


def command_docs(spec: Spec) -> dict[str, Any]:
    """One COMMAND DOCS entry: what redis-cli's hints and `help` are built from."""
    docs: dict[str, Any] = {
        "summary": spec.summary,
        "since": spec.since,
        "group": spec.group,
        "complexity": spec.complexity,
    }
    arguments = spec.arguments
    if arguments:
        docs["arguments"] = [_arg_reply(a) for a in arguments]
    if spec.subcommands:
        docs["subcommands"] = {sub.name: command_docs(sub) for sub in spec.subcommands}
    return docs


def _arg_reply(arg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": arg["name"], "type": arg["type"]}
    if "key_spec_index" in arg:
        out["key_spec_index"] = arg["key_spec_index"]
    if "token" in arg:
        out["token"] = arg["token"]
    if arg.get("flags"):
        out["flags"] = {SimpleString(f) for f in arg["flags"]}
    if "arguments" in arg:
        out["arguments"] = [_arg_reply(a) for a in arg["arguments"]]
    return out
