"""Every input the fuzzers kept (fuzz/corpus/) still passes its target's checks.

The corpora hold the smallest set of inputs that reached all the coverage the
fuzzers found, including the inputs that once crashed a decoder; replaying
them is the regression test for every decoder of outside bytes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = sorted(p.name for p in (FUZZ / "corpus").iterdir() if p.is_dir())


def load(target: str):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(FUZZ))
    try:
        spec = importlib.util.spec_from_file_location(
            f"fuzz_target_{target}", FUZZ / f"{target}.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(FUZZ))
    return module.check


@pytest.mark.parametrize("target", TARGETS)
def test_the_kept_corpus_passes_the_target(target: str) -> None:
    check = load(target)
    inputs = sorted((FUZZ / "corpus" / target).iterdir())
    assert inputs, f"fuzz/corpus/{target} is empty"
    for path in inputs:
        check(path.read_bytes())
