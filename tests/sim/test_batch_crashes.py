"""Rolling crashes and restarts under load: every oracle holds on every seed."""

from __future__ import annotations

import pytest

from .batch import check, specs


@pytest.mark.parametrize("spec", specs("crash", range(16)), ids=lambda s: s.command())
def test_crashes_lose_no_committed_write_and_the_dead_are_declared(spec):
    check(spec)
