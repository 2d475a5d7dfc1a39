"""Entries with TTLs under partitions, crashes, loss and clock skew: expiry, sweeping and
tombstone collection leave every replica identical and every acknowledged write where its
TTL says, even when a peer's clock runs ahead."""

from __future__ import annotations

import pytest

from .batch import check, specs

CASES = (
    specs("partition", range(20, 23), ttl_share=0.5)
    + specs("crash", range(20, 23), ttl_share=0.5)
    + specs("loss", range(20, 22), ttl_share=0.5)
    + specs("skew", range(20, 23), ttl_share=0.5)
    + specs("mixed", range(20, 22), ttl_share=0.5)
)


@pytest.mark.parametrize("spec", CASES, ids=lambda s: s.command())
def test_expiring_entries_converge_and_are_collected_everywhere(spec):
    check(spec)
