"""The leader's side of leases: when to propose `expire`, and why a new leader waits."""

from __future__ import annotations

import msgpack
import pytest

from swarmnode.consensus.leases import LeaseKeeper
from swarmnode.consensus.machine import LeaseFreed, LeaseGranted


def expired(commands: list[bytes]) -> list[tuple[str, int, int]]:
    return [(c["key"], c["token"], c["lease_index"]) for c in map(msgpack.unpackb, commands)]


def test_expire_is_proposed_once_lease_and_margin_have_passed_on_the_leaders_clock():
    keeper = LeaseKeeper(margin=0.1)
    keeper.become_leader(10.0, [])
    keeper.observe(10.0, LeaseGranted("t", "k", 7, 7, 2000))
    assert keeper.due(12.0) == []
    assert keeper.next_deadline() == pytest.approx(12.1)
    assert expired(keeper.due(12.1)) == [("k", 7, 7)]


def test_a_renewal_pushes_the_deadline_and_expire_names_the_renewal():
    keeper = LeaseKeeper(margin=0.0)
    keeper.become_leader(0.0, [])
    keeper.observe(0.0, LeaseGranted("t", "k", 7, 7, 1000))
    keeper.observe(0.8, LeaseGranted("t", "k", 7, 12, 1000))
    assert keeper.due(1.5) == []
    assert expired(keeper.due(1.8)) == [("k", 7, 12)]


def test_a_freed_lease_is_forgotten():
    keeper = LeaseKeeper(margin=0.0)
    keeper.become_leader(0.0, [])
    keeper.observe(0.0, LeaseGranted("t", "k", 7, 7, 1000))
    keeper.observe(0.5, LeaseFreed("t", "k"))
    assert keeper.due(5.0) == [] and keeper.next_deadline() is None


def test_a_new_leader_counts_every_lease_as_renewed_at_its_election():
    """A lease the old leader granted a moment before it failed lasts its full length from
    the new leader's election, whatever it had left."""
    keeper = LeaseKeeper(margin=0.0)
    keeper.become_leader(100.0, [LeaseGranted("t", "k", 3, 3, 5000)])
    assert keeper.due(104.9) == []
    assert expired(keeper.due(105.0)) == [("k", 3, 3)]


def test_an_expire_that_got_lost_is_proposed_again_and_followers_propose_nothing():
    keeper = LeaseKeeper(margin=0.0, retry=0.5)
    keeper.become_leader(0.0, [LeaseGranted("t", "k", 3, 3, 1000)])
    assert len(keeper.due(1.0)) == 1
    assert keeper.due(1.4) == []
    assert len(keeper.due(1.5)) == 1
    keeper.become_follower()
    keeper.observe(2.0, LeaseGranted("t", "j", 9, 9, 10))
    assert keeper.due(100.0) == []


def test_margin_and_retry_are_checked():
    with pytest.raises(ValueError):
        LeaseKeeper(margin=-1)
    with pytest.raises(ValueError):
        LeaseKeeper(margin=0, retry=0)
