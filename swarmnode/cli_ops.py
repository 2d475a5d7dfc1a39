"""The CLI's client commands, made from the operation table.

Every operation with a `Cli` entry in `service/table.py` becomes a command
(`swarmnode get NS KEY`, `swarmnode ns init NAME --dim 3`): its arguments
become positionals or flags as the table says, parsed by kind (JSON for maps
and `--json-value` values, `0.1,0.2` or `[0.1, 0.2]` for vectors, TTLs as
people write them, `1h`, passed on for the node to read). A new operation in
the table is a new command, and `tests/cli/test_cli_table.py` fails when the
parser and the table disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from swarmnode.errors import BadRequest
from swarmnode.service.table import OPERATIONS, Arg, OpSpec
from swarmnode.vectors.cli import VECTOR_HELP, parse_json, parse_vector

Renderer = Callable[[Any], str]


def flag_of(arg: Arg) -> str:
    name = arg.cli_name or arg.name.replace("_", "-")
    return f"-{name}" if len(name) == 1 else f"--{name}"


def _help(arg: Arg) -> str:
    text = arg.doc
    if arg.kind == "vector":
        text = f"{text} ({VECTOR_HELP})"
    elif arg.kind == "map":
        text = f"{text} (JSON)"
    elif arg.kind == "value":
        text = f"{text} ('-' reads stdin; see --json-value)"
    if arg.default not in (None, False):
        text = f"{text} (default {arg.default})"
    return text


def add_arguments(sp: argparse.ArgumentParser, spec: OpSpec) -> None:
    """The table's arguments of `spec` as argparse arguments (dest = the argument's name)."""
    for arg in spec.args:
        if arg.cli == "hidden":
            continue
        kwargs: dict[str, Any] = {"help": _help(arg)}
        if arg.kind == "int":
            kwargs["type"] = int
        elif arg.kind == "number":
            kwargs["type"] = float
        elif arg.kind == "enum":
            kwargs["choices"] = list(arg.choices)
        if arg.cli in ("positional", "optional", "many"):
            if arg.cli == "optional":
                kwargs["nargs"] = "?"
            elif arg.cli == "many":
                kwargs["nargs"] = "+"
            if arg.name == "in":
                kwargs["metavar"] = "IN"
            sp.add_argument(arg.name, **kwargs)
        elif arg.kind == "bool":
            sp.add_argument(flag_of(arg), dest=arg.name, action="store_true", help=kwargs["help"])
        elif arg.kind == "members":
            kwargs["help"] += " (repeat the flag for more)"
            sp.add_argument(flag_of(arg), dest=arg.name, action="append", **kwargs)
        else:
            sp.add_argument(flag_of(arg), dest=arg.name, **kwargs)
    if any(a.kind == "value" for a in spec.args if a.cli != "hidden"):
        sp.add_argument("--json-value", action="store_true", help="parse values as JSON")


def request_args(spec: OpSpec, ns: argparse.Namespace) -> dict[str, Any]:
    """What the parsed command line asks of the node: only what was given."""
    out: dict[str, Any] = {}
    for arg in spec.args:
        if arg.cli == "hidden":
            continue
        value = getattr(ns, arg.name, None)
        if value is None or (arg.kind == "bool" and value is False):
            continue
        if arg.kind == "vector":
            value = parse_vector(value)
        elif arg.kind == "map":
            value = parse_json(value, flag_of(arg))
        elif arg.kind == "value":
            value = _value(value, ns.json_value)
        out[arg.name] = value
    return out


def _value(raw: str, as_json: bool) -> Any:
    text = sys.stdin.read() if raw == "-" else raw
    if not as_json:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"--json-value: {exc}") from None


def add_commands(
    sub: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    nested: argparse.ArgumentParser,
) -> None:
    """One command per operation with a `Cli` entry; two-word commands share a group."""
    groups: dict[str, argparse._SubParsersAction] = {}
    for spec in OPERATIONS:
        if spec.cli is None:
            continue
        words = spec.cli.command
        if len(words) == 1:
            sp = sub.add_parser(words[0], help=spec.cli.help, parents=[common])
        else:
            group = groups.get(words[0])
            if group is None:
                parent = sub.add_parser(words[0], help=f"{words[0]} commands", parents=[common])
                parent.set_defaults(func=None, op=None, group=words[0])
                group = groups[words[0]] = parent.add_subparsers(dest=f"{words[0]}_cmd")
            sp = group.add_parser(words[1], help=spec.cli.help, parents=[nested])
        add_arguments(sp, spec)
        sp.set_defaults(func=None, op=spec.name)


GROUP_DEFAULTS = {"ns": "ns_list"}
"""What a group command alone does (`swarmnode ns` lists namespaces)."""


def operation_of(ns: argparse.Namespace) -> OpSpec:
    from swarmnode.service.table import TABLE

    name = ns.op or GROUP_DEFAULTS[ns.group]
    return TABLE[name]
