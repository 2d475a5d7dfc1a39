"""The harness's oracles catch what they claim to catch, and forgive only unknown outcomes."""

from __future__ import annotations

from typing import Any

from swarmnode.chaos import oracles
from swarmnode.chaos.history import FAIL, INFO, OK, History


def op(h: History, f: str, key: str, value: Any, outcome: str, *, node: int = 0, **detail: Any):
    o = h.invoke(0, f, key, value, node)
    h.complete(o, outcome, value if outcome == OK else None, detail=detail)
    return o


def test_a_lost_acknowledged_write_is_flagged_and_a_newer_unknown_one_is_allowed() -> None:
    h = History(None)
    op(h, "write", "r1", 1, OK, ts=100)
    op(h, "write", "r1", 2, OK, ts=200)
    op(h, "write", "r1", 3, INFO)
    assert oracles.check_registers(h, {"r1": {"ts": 200, "value": 2}}) == []
    assert oracles.check_registers(h, {"r1": {"ts": 300, "value": 3}}) == []
    lost = oracles.check_registers(h, {"r1": {"ts": 100, "value": 1}})
    assert lost and "lost" in lost[0]
    assert oracles.check_registers(h, {}) != []
    assert oracles.check_registers(h, {"r1": {"ts": 300, "value": 99}}) != []


def test_a_register_may_be_absent_only_after_a_delete() -> None:
    h = History(None)
    op(h, "write", "d1", 1, OK, ts=100)
    assert oracles.check_registers(h, {}) != []
    op(h, "delete", "d1", None, INFO)
    assert oracles.check_registers(h, {}) == []


def test_a_read_of_a_failed_write_is_flagged() -> None:
    h = History(None)
    op(h, "write", "r1", 7, FAIL)
    r = h.invoke(1, "read", "r1", None, 0)
    h.complete(r, OK, 7)
    assert oracles.check_registers(h, {}) != []


def test_counters_count_every_acknowledged_increment_and_any_subset_of_unknown_ones() -> None:
    h = History(None)
    op(h, "incr", "c1", 2, OK)
    op(h, "incr", "c1", 5, INFO)
    op(h, "incr", "c1", 1, INFO)
    op(h, "incr", "c1", 100, FAIL)
    for value in (2, 3, 7, 8):
        assert oracles.check_counters(h, {"c1": {"value": value}}) == [], value
    for value in (0, 1, 4, 102):
        assert oracles.check_counters(h, {"c1": {"value": value}}) != [], value


def test_sets_keep_an_add_no_remove_could_see_and_drop_one_removed_on_its_node() -> None:
    h = History(None)
    op(h, "sadd", "s1", "a", OK, node=0)
    op(h, "srem", "s1", "a", OK, node=0)
    op(h, "sadd", "s1", "b", OK, node=1)
    assert oracles.check_sets(h, {"s1": {"value": ["b"]}}) == []
    assert oracles.check_sets(h, {"s1": {"value": ["a", "b"]}}) != []
    assert oracles.check_sets(h, {"s1": {"value": []}}) != []


def test_replicas_that_differ_are_named() -> None:
    same = {"chaos": {"k": {"ts": 1, "value": 1}}}
    other = {"chaos": {"k": {"ts": 2, "value": 2}}}
    assert oracles.compare_replicas({0: same, 1: same}) == []
    assert "node 1" in oracles.compare_replicas({0: same, 1: other})[0]
