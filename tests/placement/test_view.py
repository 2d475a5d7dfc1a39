"""The settled view: membership changes count once they hold; the dead wait out a grace."""

from __future__ import annotations

from swarmnode.membership.state import MemberInfo, MemberState
from swarmnode.placement.config import PlacementConfig
from swarmnode.placement.view import ViewTracker

CFG = PlacementConfig(settle=1.0, dead_grace=5.0)


def member(node_id: str, state: MemberState = MemberState.ALIVE, since: float = 0.0) -> MemberInfo:
    return MemberInfo(node_id, ("10.0.0.1", 7117), state, 1, since)


def test_a_new_member_list_is_followed_only_once_it_held_for_settle() -> None:
    t = ViewTracker("a", CFG, now=0.0)
    t.observe(0.0, [member("a"), member("b")])
    assert t.tick(0.5) is None
    t.observe(0.6, [member("a"), member("b"), member("c")])
    assert t.tick(1.2) is None  # changed again at 0.6: the clock restarts
    assert t.next_deadline() == 1.6
    assert t.tick(1.6) == ("a", "b", "c")
    assert t.tick(5.0) is None


def test_a_flapping_member_moves_nothing() -> None:
    t = ViewTracker("a", CFG, now=0.0, previous=("a", "b"))
    t.observe(0.0, [member("a"), member("b")])
    t.observe(0.2, [member("a"), member("b", MemberState.DEAD, 0.2)])
    t.observe(0.4, [member("a"), member("b")])
    assert t.tick(10.0) is None
    assert t.view == ("a", "b")


def test_a_dead_member_keeps_its_place_for_the_grace_a_left_one_does_not() -> None:
    t = ViewTracker("a", CFG, now=0.0, previous=("a", "b", "c"))
    dead, left = member("b", MemberState.DEAD, 1.0), member("c", MemberState.LEFT, 1.0)
    t.observe(1.0, [member("a"), dead, left])
    assert t.tick(2.5) == ("a", "b")
    assert t.needs_observe(5.9) is False
    assert t.needs_observe(6.0) is True
    t.observe(6.0, [member("a"), member("b", MemberState.DEAD, 1.0)])
    assert t.tick(7.0) == ("a",)


def test_suspects_stay() -> None:
    t = ViewTracker("a", CFG, now=0.0)
    t.observe(0.0, [member("a"), member("b", MemberState.SUSPECT, 0.0)])
    assert t.tick(1.0) == ("a", "b")
