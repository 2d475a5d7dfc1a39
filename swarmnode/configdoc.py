"""The configuration reference of docs/OPERATIONS.md, generated from the dataclasses.

Every key's type, unit, default, `local`-profile value and allowed range come from its
`setting(...)` declaration and its meaning from the docstring under the field, so the
page cannot drift from the code: `python -m swarmnode.configdoc --write` rewrites the
block between the markers, and tests/test_config_doc.py fails when it is stale.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

from swarmnode import docblock
from swarmnode.config import (
    ENVIRONMENT,
    LOG_FORMATS,
    LOG_LEVELS,
    PROFILES,
    SECTIONS,
    Config,
    section_settings,
)
from swarmnode.settings import UNIT_NAMES, Setting, field_types, settings_of, show

BEGIN = "<!-- BEGIN GENERATED: configuration reference (python -m swarmnode.configdoc --write) -->"
END = "<!-- END GENERATED: configuration reference -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "OPERATIONS.md"

TOP_LEVEL_ROWS = [
    (
        "data_dir",
        "path",
        "`$XDG_DATA_HOME/swarmnode`",
        "",
        "Where the store, vectors and snapshots live; one node per directory.",
    ),
    (
        "socket",
        "path",
        "`<data_dir>/run/swarmnode.sock`",
        "at most 107 bytes",
        "The client socket (directory 0700, socket 0600).",
    ),
    (
        "bind",
        "HOST:PORT",
        "`127.0.0.1:7117`",
        "an IP literal; not loopback only with `cluster_key_file` or `insecure`",
        "Gossip address, UDP and TCP on one port.",
    ),
    (
        "join",
        "array of HOST:PORT",
        "`[]`",
        "",
        "Seeds to contact at start, retried until one answers.",
    ),
    (
        "node_id",
        "string",
        "random, kept with the data",
        "1 to 64 of `A-Z a-z 0-9 - _`",
        "Id for a new data directory; an existing one must already have it.",
    ),
    ("cluster_key_file", "path", "none", "", "Gossip encryption key file (`swarmnode keygen`)."),
    ("insecure", "boolean", "`false`", "", "Allow plaintext gossip on a non-loopback address."),
    ("profile", "string", "`lan`", ", ".join(PROFILES), "Timer profile the defaults come from."),
    ("log_level", "string", "`info`", ", ".join(LOG_LEVELS), "Lowest level logged."),
    (
        "log_format",
        "string",
        "`text`",
        ", ".join(LOG_FORMATS),
        "`json`: one JSON object per line, for collectors.",
    ),
]


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass, whitespace collapsed."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, [*body[1:], None], strict=True):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _bytes(value: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return ""


def _value(value: Any, unit: str) -> str:
    text = f"`{show(value)}`"
    human = _bytes(value) if unit == "bytes" and type(value) is int else ""
    return f"{text} ({human})" if human else text


def _allowed(spec: Setting, kind: type) -> str:
    if kind is bool:
        return "true, false"
    if spec.unit != "bytes":
        return spec.range_text()
    return spec.range_text(lambda n: _bytes(int(n)) or show(n))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def section_table(name: str, cls: type) -> list[str]:
    lan, local = (
        getattr(Config.for_profile("lan"), name),
        getattr(Config.for_profile("local"), name),
    )
    specs, types, docs = section_settings(cls), field_types(cls), field_docs(cls)
    lines = [
        f"### `[{name}]`",
        "",
        f"{' '.join((cls.__doc__ or '').split())} (`{cls.__module__}.{cls.__name__}`)",
        "",
        "| key | type | unit | default | `local` | allowed | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in settings_of(cls):
        spec = specs[f.name]
        default, in_local = getattr(lan, f.name), getattr(local, f.name)
        lines.append(
            "| "
            + " | ".join(
                _cell(cell)
                for cell in (
                    f"`{f.name}`",
                    types[f.name].__name__,
                    UNIT_NAMES.get(spec.unit, spec.unit),
                    _value(default, spec.unit),
                    _value(in_local, spec.unit) if in_local != default else "",
                    _allowed(spec, types[f.name]),
                    docs.get(f.name, ""),
                )
            )
            + " |"
        )
    return [*lines, ""]


def render() -> str:
    """The whole generated block, markers included."""
    lines = [
        BEGIN,
        "",
        "### Top level",
        "",
        "| key | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    for row in TOP_LEVEL_ROWS:
        key, kind, default, allowed, meaning = row
        lines.append(f"| `{key}` | {kind} | {default} | {_cell(allowed)} | {_cell(meaning)} |")
    env = ", ".join(f"`{var}` ({key})" for var, key in ENVIRONMENT.items())
    lines += [
        "",
        f"Environment: `SWARMNODE_PROFILE` (profile), {env}.",
        "",
    ]
    for name, cls in SECTIONS.items():
        lines += section_table(name, cls)
    lines.append(END)
    return "\n".join(lines)


def splice(page: str, block: str) -> str:
    """`page` with the text between the markers replaced by `block`."""
    return docblock.splice(page, block, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    return docblock.print_or_write(
        argv, __doc__.splitlines()[0], DOC, render, (BEGIN, END), "configuration reference"
    )


if __name__ == "__main__":
    sys.exit(main())
