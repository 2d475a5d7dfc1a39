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
    op(h, "put", "r1", 1, OK, ts=100)
    op(h, "put", "r1", 2, OK, ts=200)
    op(h, "put", "r1", 3, INFO)
    assert oracles.check_registers(h, {"r1": {"ts": 200, "value": 2}}) == []
    assert oracles.check_registers(h, {"r1": {"ts": 300, "value": 3}}) == []
    lost = oracles.check_registers(h, {"r1": {"ts": 100, "value": 1}})
    assert lost and "lost" in lost[0]
    assert oracles.check_registers(h, {}) != []
    assert oracles.check_registers(h, {"r1": {"ts": 300, "value": 99}}) != []


def test_a_register_may_be_absent_only_after_a_delete() -> None:
    h = History(None)
    op(h, "put", "d1", 1, OK, ts=100)
    assert oracles.check_registers(h, {}) != []
    op(h, "delete", "d1", None, INFO)
    assert oracles.check_registers(h, {}) == []


def test_a_read_of_a_failed_write_is_flagged() -> None:
    h = History(None)
    op(h, "put", "r1", 7, FAIL)
    r = h.invoke(1, "get", "r1", None, 0)
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


def cas(h: History, process: int, key: str, expected: Any, new: Any, outcome: str) -> None:
    o = h.invoke(process, "cas", key, [expected, new], 0)
    h.complete(o, outcome, [expected, new] if outcome == OK else None)


def read(h: History, process: int, key: str, seen: Any) -> None:
    o = h.invoke(process, "read", key, None, 0)
    h.complete(o, OK, seen)


def test_the_group_registers_go_through_the_linearizability_checker() -> None:
    h = History(None)
    cas(h, 0, "x0", None, 1, OK)
    cas(h, 1, "x0", None, 2, FAIL)  # another client's swap from absent lost
    cas(h, 1, "x0", 1, 3, OK)
    read(h, 0, "x0", 3)
    # CRDT registers are eventually consistent and not the checker's business.
    op(h, "put", "r1", 1, OK, ts=100)
    assert oracles.check_linearizable(h) == []
    read(h, 2, "x0", 1)  # after 3 was acknowledged: a stale read
    found = oracles.check_linearizable(h)
    assert found and "not linearizable" in found[0]


def test_an_unknown_swap_may_have_happened_or_not() -> None:
    h = History(None)
    cas(h, 0, "x0", None, 1, OK)
    o = h.invoke(1, "cas", "x0", [1, 2], 0)
    h.complete(o, INFO)
    read(h, 2, "x0", 2)
    read(h, 3, "x0", 2)
    assert oracles.check_linearizable(h) == []


def claim(h: History, key: str, owner: str, token: int, at: float, took: float) -> None:
    o = h.invoke(0, "claim", key, [owner, 2.0], 0)
    h.complete(o, OK, [True, token])
    o.invoked, o.completed = at, at + took


def test_claims_that_overlap_in_time_or_reuse_a_smaller_token_are_flagged() -> None:
    h = History(None)
    claim(h, "l0", "a", 5, at=0.0, took=0.01)
    claim(h, "l0", "b", 9, at=1.0, took=1.5)  # granted at 2.5, after a's lease ran out at 2.0
    assert oracles.check_claims(h) == []
    claim(h, "l0", "c", 12, at=3.0, took=0.1)  # granted at 3.1, after b held it (2.5 to 3.0)
    assert oracles.check_claims(h) == []
    claim(h, "l0", "d", 14, at=3.2, took=0.1)  # c holds it until 5.0
    overlap = oracles.check_claims(h)
    assert overlap and "held it" in overlap[0]
    h2 = History(None)
    claim(h2, "l1", "a", 7, at=0.0, took=0.01)
    claim(h2, "l1", "b", 6, at=3.0, took=0.01)
    assert any("token 6 granted after token 7" in v for v in oracles.check_claims(h2))


def ttl_write(h: History, key: str, value: int, ttl: float, outcome: str, at: float) -> None:
    o = h.invoke(0, "put_ttl", key, [value, ttl], 0)
    h.complete(o, outcome, [value, ttl] if outcome == OK else None)
    o.invoked, o.completed = at, at + 0.01


def test_an_expired_ttl_key_still_listed_is_flagged_unless_its_write_may_have_landed_late() -> None:
    from swarmnode.crdt.hlc import HybridLogicalClock, wall_ms

    h = History(None)
    ttl_write(h, "t0", 1, 2.0, OK, at=10.0)
    ttl_write(h, "t1", 2, 2.0, INFO, at=10.0)  # sent to a node that was then stopped
    assert oracles.check_ttl(h, {}, checked_at=20.0) == []
    late = oracles.check_ttl(h, {"t0": {"value": 1}}, checked_at=20.0)
    assert late and "still listed" in late[0]
    assert oracles.check_ttl(h, {"t0": {"value": 1}}, checked_at=12.5) == []
    # The unknown write applied when its node resumed: listed with its own expiry, fine.
    ts = HybridLogicalClock().now(1_700_000_030_000)
    applied = {"value": 2, "ts": ts, "expires_at": wall_ms(ts) + 2000}
    assert oracles.check_ttl(h, {"t1": applied}, checked_at=20.0) == []
    wrong = {**applied, "expires_at": wall_ms(ts) + 9000}
    assert oracles.check_ttl(h, {"t1": wrong}, checked_at=20.0) != []
    assert oracles.check_ttl(h, {"t0": {"value": 99}}, checked_at=11.0) != []
