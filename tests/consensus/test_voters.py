"""The voter policy: who votes when a group forms, and how a dead voter is replaced."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.records import ConfChange, ConfState
from swarmnode.consensus.voters import MemberView, initial_voters, next_change, voter_count

CFG = replace(RaftConfig(), voter_dead_time=60.0, max_voters=5, standby_learners=2)
ALIVE = MemberView(True)
DEAD = MemberView(False, 600.0)
JUST_DIED = MemberView(False, 5.0)


def conf(voters: str, learners: str = "") -> ConfState:
    return ConfState(frozenset(voters), frozenset(learners))


@pytest.mark.parametrize(
    ("members", "voters"),
    [("a", "a"), ("ba", "a"), ("abc", "abc"), ("dcba", "abc"), ("gfedcba", "abcde")],
)
def test_initial_voters_are_an_odd_number_of_the_lowest_ids(members, voters):
    assert initial_voters(members) == list(voters)
    assert initial_voters(reversed(members)) == list(voters)


def test_a_group_needs_a_member():
    with pytest.raises(ValueError):
        initial_voters([])


def test_a_dead_voter_is_replaced_by_promoting_a_learner_first_then_removed():
    view = {n: ALIVE for n in "abcdfg"} | {"e": DEAD}
    c = conf("abcde", "fg")
    assert next_change(c, view, False, CFG, "a") == ConfChange("add_voter", "f")
    c = ConfChange("add_voter", "f").apply(c)
    assert next_change(c, view, False, CFG, "a") == ConfChange("remove", "e")
    c = ConfChange("remove", "e").apply(c)
    view["h"] = ALIVE
    assert next_change(c, view, False, CFG, "a") == ConfChange("add_learner", "h")
    c = ConfChange("add_learner", "h").apply(c)
    assert next_change(c, view, False, CFG, "a") is None
    assert c.voters == set("abcdf")


def test_nothing_is_proposed_while_a_change_is_pending():
    view = {n: ALIVE for n in "abcdf"} | {"e": DEAD}
    assert next_change(conf("abcde", "f"), view, True, CFG, "a") is None


def test_a_voter_that_just_died_is_kept():
    view = {n: ALIVE for n in "abcdfg"} | {"e": JUST_DIED}
    assert next_change(conf("abcde", "fg"), view, False, CFG, "a") is None


def test_a_learner_that_has_not_caught_up_is_not_promoted_and_the_dead_voter_stays():
    view = {n: ALIVE for n in "abcdf"} | {"e": DEAD}
    assert next_change(conf("abcde", "f"), view, False, CFG, "a", caught_up=set()) is None


def test_without_a_learner_an_outsider_is_made_one_before_anything_is_removed():
    view = {n: ALIVE for n in "abcx"}
    view["e"] = DEAD
    assert next_change(conf("abce"), view, False, CFG, "a") == ConfChange("add_learner", "x")


def test_dead_voters_without_replacement_are_removed_down_to_the_live_ones():
    view = {n: ALIVE for n in "abc"} | {"d": DEAD, "e": DEAD}
    assert next_change(conf("abcde"), view, False, CFG, "a") == ConfChange("remove", "d")
    gone = {n: ALIVE for n in "abc"}
    assert next_change(conf("abcd"), gone, False, CFG, "a") == ConfChange("remove", "d")


def test_a_surplus_voter_is_demoted_but_never_the_leader():
    view = {n: ALIVE for n in "abcdef"}
    change = next_change(conf("abcdef"), view, False, CFG, "f")
    assert change == ConfChange("add_learner", "e")


def test_voter_count_is_odd_and_bounded():
    assert [voter_count(n, 5) for n in range(1, 9)] == [1, 1, 3, 3, 5, 5, 5, 5]


@given(
    st.lists(st.sampled_from(["alive", "dead", "just_died", "missing"]), min_size=1, max_size=9),
    st.lists(st.sampled_from(["voter", "learner", "outsider"]), min_size=9, max_size=9),
)
def test_repeated_changes_converge_to_a_healthy_configuration(states, roles):
    """Applying the policy's changes one at a time ends within a few steps with: the
    leader voting, no long-dead member left, an odd number of voters as large as the live
    nodes allow (at most five) once no voter is waiting out `voter_dead_time`, and
    standby learners when nodes are available."""
    nodes = [f"n{i}" for i in range(len(states))]
    views = {"alive": ALIVE, "dead": DEAD, "just_died": JUST_DIED}
    view = {n: views[s] for n, s in zip(nodes, states, strict=True) if s != "missing"}
    leader = "leader"
    view[leader] = ALIVE
    voters = {leader} | {n for n, r in zip(nodes, roles, strict=False) if r == "voter"}
    learners = {n for n, r in zip(nodes, roles, strict=False) if r == "learner"} - voters
    c = ConfState(frozenset(voters), frozenset(learners))
    for _ in range(40):
        change = next_change(c, view, False, CFG, leader)
        if change is None:
            break
        assert change.node != leader
        c = change.apply(c)
        assert c.voters
    else:
        pytest.fail("the policy did not settle")
    live = {n for n, v in view.items() if v.alive}
    assert leader in c.voters
    assert not [n for n in c.members() if n not in view or view[n] is DEAD]
    if c.voters <= live:
        assert len(c.voters) == voter_count(len(c.voters) + len(c.learners & live), 5)
    spare = live - c.members()
    assert len(c.learners & live) >= CFG.standby_learners or not spare
