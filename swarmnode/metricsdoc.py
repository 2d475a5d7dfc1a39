"""The metrics reference of docs/OPERATIONS.md, generated from a running node's registry.

A node is composed exactly as `swarmnode run` composes it (`NodeProcess`, with the RESP
server and the metrics endpoint on, in a temporary directory, on loopback) and stopped
as soon as it is ready; every metric its layers declared is then in its registry, with
its type, labels, place in `stats` and help text. So the page lists what a node really
exposes: `python -m swarmnode.metricsdoc --write` rewrites the block between the
markers, and a test fails when it is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import tempfile
from pathlib import Path

from swarmnode import docblock
from swarmnode.config import load_config
from swarmnode.metrics import Histogram, Registry
from swarmnode.runtime.real import NodeProcess

BEGIN = "<!-- BEGIN GENERATED: metrics reference (python -m swarmnode.metricsdoc --write) -->"
END = "<!-- END GENERATED: metrics reference -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "OPERATIONS.md"


async def _composed_registry() -> Registry:
    with tempfile.TemporaryDirectory(prefix="sn-metricsdoc-", dir="/tmp") as tmp:
        base = Path(tmp)
        overrides = {
            "data_dir": base / "data",
            "socket": base / "run" / "api.sock",
            "bind": "127.0.0.1:0",
            "metrics": {"bind": "127.0.0.1:0"},
            "resp": {"socket": str(base / "run" / "resp.sock")},
        }
        process = NodeProcess(load_config(None, profile="local", overrides=overrides))
        with contextlib.redirect_stdout(io.StringIO()):
            runner = asyncio.create_task(process.run())
            ready = asyncio.create_task(process.ready.wait())
            await asyncio.wait([runner, ready], return_when=asyncio.FIRST_COMPLETED)
            if runner.done():
                runner.result()  # it failed to start: raise why
                raise RuntimeError("the node stopped before it was ready")
            process.stop()
            await runner
        return process.metrics


def node_registry() -> Registry:
    """The registry of a node composed as `swarmnode run` composes one, every layer on."""
    return asyncio.run(_composed_registry())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(registry: Registry) -> str:
    """The markdown block: one row per metric, sorted by name (so by layer)."""
    lines = [
        BEGIN,
        "",
        "| metric | type | labels | in `stats` | meaning |",
        "|---|---|---|---|---|",
    ]
    for metric in sorted(registry.metrics(), key=lambda m: m.name):
        kind = metric.kind
        if isinstance(metric, Histogram):
            kind += f" ({len(metric.buckets)} buckets)"
        elif metric.fn is not None:
            kind += " (sampled)"
        labels = ", ".join(f"`{label}`" for label in metric.labelnames)
        where = f"`{'.'.join(metric.stats)}`" if metric.stats else ""
        lines.append(f"| `{metric.name}` | {kind} | {labels} | {where} | {_cell(metric.help)} |")
    lines += ["", END]
    return "\n".join(lines)


def splice(page: str, block: str) -> str:
    """`page` with the text between the markers replaced by `block`."""
    return docblock.splice(page, block, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    return docblock.print_or_write(
        argv,
        __doc__.splitlines()[0],
        DOC,
        lambda: render(node_registry()),
        (BEGIN, END),
        "metrics reference",
    )


if __name__ == "__main__":
    sys.exit(main())
