"""Every fault at once, drawn per seed: every oracle holds."""

from __future__ import annotations

import pytest

from .batch import check, specs


@pytest.mark.parametrize("spec", specs("mixed", range(100, 120)), ids=lambda s: s.command())
def test_mixed_faults_lose_nothing_acknowledged(spec):
    check(spec)
