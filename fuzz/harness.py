"""What every fuzz target shares: run a `check(data)` under atheris, or replay files through it.

A target module defines `check(data: bytes) -> None`, which must return for
every input (raising only what the decoder documents counts as returning:
the target catches that itself). Anything else escaping `check` is a
finding. `python fuzz/<target>.py [libFuzzer flags] CORPUS_DIR` fuzzes with
coverage feedback; `python fuzz/<target>.py --replay FILE_OR_DIR...` runs
inputs once each without atheris (what the regression test does).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def inputs(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p]
    return out


def main(check: Callable[[bytes], None]) -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--replay":
        files = inputs(sys.argv[2:])
        for path in files:
            check(path.read_bytes())
        print(f"replayed {len(files)} inputs", file=sys.stderr)
        return
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
