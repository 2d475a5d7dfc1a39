"""Pick the reader for a history file and run it.

`auto` goes by extension first (`.jsonl`/`.ndjson`: JSON Lines; `.log`: a
Jepsen log), then by content: a file whose first non-blank line starts with
`{` is JSON Lines, anything else is read as a Jepsen log.
"""

from __future__ import annotations

from pathlib import Path

from swarmnode.check.history import History, HistoryError
from swarmnode.check.jepsen import read_jepsen
from swarmnode.check.jsonl import read_jsonl

FORMATS = ("auto", "jepsen", "jsonl")


def detect_format(path: Path, lines: list[str]) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".log":
        return "jepsen"
    first = next((line for line in lines if line.strip()), "")
    return "jsonl" if first.lstrip().startswith("{") else "jepsen"


def read_history(path: str | Path, functions: frozenset[str], format: str = "auto") -> History:
    """Read `path` as `format`; HistoryError names the file (and line) on bad input."""
    path = Path(path)
    source = str(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise HistoryError(source, line, "not UTF-8 text") from exc
    except OSError as exc:
        raise HistoryError(source, None, f"cannot read: {exc.strerror or exc}") from exc
    chosen = detect_format(path, lines) if format == "auto" else format
    reader = read_jsonl if chosen == "jsonl" else read_jepsen
    return reader(lines, source, functions)
