"""Lossy, duplicating and reordering links, skewed clocks and slow nodes: every oracle holds."""

from __future__ import annotations

import pytest

from .batch import check, specs

CASES = specs("loss", range(6)) + specs("skew", range(6)) + specs("slow", range(4))


@pytest.mark.parametrize("spec", CASES, ids=lambda s: s.command())
def test_degraded_networks_and_hosts_still_converge_to_the_right_state(spec):
    check(spec)
