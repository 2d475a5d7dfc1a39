"""Symmetric, minority and one-way partitions under load: every oracle holds on every seed."""

from __future__ import annotations

import pytest

from .batch import check, specs


@pytest.mark.parametrize("spec", specs("partition", range(16)), ids=lambda s: s.command())
def test_partitions_lose_no_acknowledged_write_and_heal(spec):
    check(spec)
