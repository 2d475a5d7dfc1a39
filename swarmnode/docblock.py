"""Generated blocks inside hand-written docs.

The configuration and metrics references in docs/OPERATIONS.md and the
operations table in docs/PROTOCOL.md are rendered from the code and spliced
between two marker lines, so the page around them stays hand-written and the
block cannot drift from the code (tests compare the page with a fresh render).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path


def splice(page: str, block: str, begin: str, end: str) -> str:
    """`page` with the text from marker `begin` to marker `end` (both included) replaced by
    `block`, which carries the markers itself."""
    start, stop = page.index(begin), page.index(end) + len(end)
    return page[:start] + block + page[stop:]


def print_or_write(
    argv: Sequence[str] | None,
    description: str,
    doc: Path,
    render: Callable[[], str],
    markers: tuple[str, str],
    what: str,
) -> int:
    """The command line of a reference generator: print the block, or with --write splice
    it into `doc`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write", action="store_true", help=f"rewrite the block in {doc}")
    args = parser.parse_args(argv)
    block = render()
    if not args.write:
        print(block)
        return 0
    doc.write_text(splice(doc.read_text(), block, *markers))
    print(f"wrote the {what} into {doc}")
    return 0
