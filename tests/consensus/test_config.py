"""Raft's configuration refuses values that cannot work, naming the field and its range."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarmnode.consensus.config import RaftConfig


@pytest.mark.parametrize(
    ("field", "value", "names"),
    [
        ("tick_interval", 0, "tick_interval"),
        ("tick_interval", float("nan"), "tick_interval"),
        ("heartbeat_ticks", 0, "heartbeat_ticks"),
        ("election_ticks_min", 1, "election_ticks_min"),
        ("election_ticks_max", 5, "election_ticks_max"),
        ("max_append_entries", 0, "max_append_entries"),
        ("max_inflight_appends", 0, "max_inflight_appends"),
        ("snapshot_threshold", 0, "snapshot_threshold"),
        ("snapshot_trailing_entries", -1, "snapshot_trailing_entries"),
        ("snapshot_chunk_bytes", 0, "snapshot_chunk_bytes"),
        ("voter_dead_time", -3.0, "voter_dead_time"),
        ("max_voters", 0, "max_voters"),
        ("lease_expiry_margin", -0.1, "lease_expiry_margin"),
        ("max_pending_reads", 2.5, "max_pending_reads"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(field, value, names):
    with pytest.raises(ValueError, match=names):
        replace(RaftConfig(), **{field: value})


def test_profiles_are_valid_and_local_follows_the_papers_timeouts():
    lan, local = RaftConfig.lan(), RaftConfig.local()
    assert lan.election_ticks_min * lan.tick_interval == pytest.approx(1.0)
    low = local.election_ticks_min * local.tick_interval
    high = local.election_ticks_max * local.tick_interval
    assert (low, high) == (pytest.approx(0.15), pytest.approx(0.3))
