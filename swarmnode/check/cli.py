"""`swarmnode check FILE...`: is each recorded history linearizable?

One line per file on stdout, `NAME linearizable|not-linearizable|unknown`
(NAME is the file name), printed as each file is decided. Notes (functions
skipped, reader used with -v, errors) go to stderr. Exit status:

    0  every history is linearizable
    1  some history is not linearizable
    2  some file could not be read (the message names the file and line)
    3  some verdict is unknown (the budget ran out), none of the above

When several apply, an unreadable file (2) outranks a violation (1), which
outranks an unknown (3).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from swarmnode.check.checker import Result, check_file
from swarmnode.check.explain import explain
from swarmnode.check.history import HistoryError
from swarmnode.check.readers import FORMATS
from swarmnode.check.register import CasRegister
from swarmnode.check.search import MAX_CONFIGURATIONS

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_UNREADABLE = 2
EXIT_UNKNOWN = 3


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Check recorded histories of read/write/cas operations for linearizability.",
        epilog=(
            "Formats: Jepsen etcd logs and swarmnode JSON Lines histories; with --format auto a "
            "file ending .jsonl/.ndjson is JSON Lines, .log is Jepsen, otherwise a first line "
            "starting with '{' means JSON Lines. Exit: 0 all linearizable, 1 one is not, "
            "2 unreadable input, 3 unknown (budget ran out)."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="history files")
    p.add_argument(
        "--explain",
        action="store_true",
        help="after a not-linearizable verdict, print a shrunk counterexample",
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        metavar="SECONDS",
        help="search budget per file; when spent the verdict is unknown (default: none)",
    )
    p.add_argument(
        "--max-steps",
        type=_positive(int),
        metavar="N",
        help="search steps per file, a budget that does not depend on machine speed",
    )
    p.add_argument(
        "--max-configs",
        type=_positive(int),
        metavar="N",
        default=MAX_CONFIGURATIONS,
        help="configurations one search may remember, which bounds its memory "
        f"(default: {MAX_CONFIGURATIONS:,}, about 1 GB)",
    )
    p.add_argument("--format", choices=FORMATS, default="auto", help="history format")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print reader and search figures to stderr"
    )
    return p


def _notes(name: str, result: Result, verbose: bool) -> list[str]:
    history = result.history
    assert history is not None
    notes = []
    if history.ignored:
        kinds = ", ".join(f"{f}: {n}" for f, n in sorted(history.ignored.items()))
        total = sum(history.ignored.values())
        notes.append(f"{name}: skipped {total} operations this checker does not model ({kinds})")
    if verbose:
        s = result.stats
        notes.append(
            f"{name}: read as {history.format}; operations: {len(history.ops)}, "
            f"failed and dropped: {history.dropped_failed}, reads with unknown outcome "
            f"dropped: {s.dropped_unknown}, other lines: {history.other_lines}; keys: {s.keys} "
            f"(searched: {s.keys_checked}), steps: {s.steps}, configurations: "
            f"{s.configurations}, {s.seconds:.3f} s"
        )
    return notes


def main(argv: list[str] | None = None, prog: str = "swarmnode check") -> int:
    args = _parser(prog).parse_args(argv)
    model = CasRegister()
    unreadable = violation = unknown = False
    for path in args.files:
        name = Path(path).name
        try:
            result = check_file(
                path,
                model,
                format=args.format,
                timeout=args.timeout,
                max_steps=args.max_steps,
                max_configurations=args.max_configs,
                explain=args.explain,
            )
        except HistoryError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            unreadable = True
            continue
        print(f"{name} {result.verdict}", flush=True)
        if result.linearizable is None:
            unknown = True
        elif not result.linearizable:
            violation = True
            if args.explain and result.counterexample is not None:
                assert result.history is not None
                for line in explain(result.counterexample, model, result.history.time_unit):
                    print(line)
                sys.stdout.flush()
        for note in _notes(name, result, args.verbose):
            print(note, file=sys.stderr)
    if unreadable:
        return EXIT_UNREADABLE
    if violation:
        return EXIT_VIOLATION
    return EXIT_UNKNOWN if unknown else EXIT_OK
