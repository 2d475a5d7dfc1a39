"""The command layer on its own: (operation, current entry, context, clock) -> (delta, result).

No LMDB here: each test builds the current entry by joining the deltas of
earlier commands, as the engine would, and checks what a command decides.
"""

from __future__ import annotations

import pytest

from swarmnode.commands import ALL, ClockReading, CommandContext, execute, members_needed
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import HybridLogicalClock, make_ts, wall_ms
from swarmnode.errors import BadRequest, Conflict, NotFound, TooLarge, WrongType
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.namespaces import NamespaceDef
from swarmnode.storage.ops import Delete, Expire, Incr, Put, SAdd, SRem

T0 = 1_700_000_000_000
LIMITS = StoreConfig()


def ctx(policy: str = "lww", ttl: float | None = None, dim: int | None = None) -> CommandContext:
    return CommandContext("n1", NamespaceDef("ns", ttl=ttl, policy=policy, dim=dim), LIMITS)


def at(ms: int, logical: int = 0) -> ClockReading:
    return ClockReading(ms, make_ts(ms, logical))


def run(op: object, current: Entry | None, c: CommandContext, clock: ClockReading):
    """Execute and join, as the engine does: (new entry, outcome)."""
    out = execute(op, current, c, clock)
    new = current if out.delta is None else (current or Entry()).join(out.delta)
    return new, out


def test_a_clock_reading_draws_a_timestamp_without_moving_the_clock() -> None:
    hlc = HybridLogicalClock(500, make_ts(T0 + 50))
    reading = ClockReading.draw(hlc, T0)
    assert reading.ts > make_ts(T0 + 50)
    assert hlc.last == make_ts(T0 + 50)


def test_put_then_put_again_is_last_writer_wins_and_reports_its_timestamp() -> None:
    c = ctx()
    e, out = run(Put("ns", "k", "a"), None, c, at(T0))
    assert out.result == {"ts": make_ts(T0), "expires_at": None}
    e, _ = run(Put("ns", "k", "b"), e, c, at(T0 + 1))
    assert e.reg.value == "b"


def test_a_put_takes_the_namespace_ttl_unless_it_gives_its_own() -> None:
    c = ctx(ttl=60.0)
    _, out = run(Put("ns", "k", "v"), None, c, at(T0))
    assert out.result["expires_at"] == T0 + 60_000
    _, out = run(Put("ns", "k", "v", ttl=0), None, c, at(T0))
    assert out.result["expires_at"] is None


def test_conditional_puts_see_liveness_not_storage() -> None:
    c = ctx()
    e, _ = run(Put("ns", "k", "v", ttl=1), None, c, at(T0))
    with pytest.raises(Conflict):
        execute(Put("ns", "k", "w", if_absent=True), e, c, at(T0 + 10))
    # Expired: absent for if_absent, missing for if_exists.
    run(Put("ns", "k", "w", if_absent=True), e, c, at(T0 + 2000))
    with pytest.raises(NotFound):
        execute(Put("ns", "k", "w", if_exists=True), e, c, at(T0 + 2000))
    with pytest.raises(BadRequest):
        execute(Put("ns", "k", "w", if_exists=True, if_absent=True), e, c, at(T0))


def test_keep_ttl_keeps_the_live_values_expiry_and_refuses_a_new_ttl_beside_it() -> None:
    c = ctx()
    e, first = run(Put("ns", "k", "v", ttl=30), None, c, at(T0))
    e, out = run(Put("ns", "k", "w", keep_ttl=True), e, c, at(T0 + 5000))
    assert out.result["expires_at"] == first.result["expires_at"] == T0 + 30_000
    with pytest.raises(BadRequest):
        execute(Put("ns", "k", "w", keep_ttl=True, ttl=5), e, c, at(T0))


def test_the_policy_decides_what_concurrent_puts_leave() -> None:
    for policy, siblings in (("lww", 1), ("mv", 2), ("consensus", 2)):
        c = ctx(policy)
        a, _ = run(Put("ns", "k", "from a"), None, c, at(T0))
        b, _ = run(
            Put("ns", "k", "from b"), None, CommandContext("n2", c.namespace, LIMITS), at(T0)
        )
        joined = a.join(b)
        kept = [joined.reg] if joined.reg is not None else joined.mv.siblings(T0)
        assert len(kept) == siblings, policy


def test_values_vectors_and_kinds_are_checked_against_limits_and_the_namespace() -> None:
    big = "x" * (LIMITS.max_value_bytes + 1)
    with pytest.raises(TooLarge):
        execute(Put("ns", "k", big), None, ctx(), at(T0))
    with pytest.raises(BadRequest, match="no vector dimension"):
        execute(Put("ns", "k", "v", vector=[1.0, 2.0]), None, ctx(), at(T0))
    with pytest.raises(BadRequest, match="expects 3"):
        execute(Put("ns", "k", "v", vector=[1.0, 2.0]), None, ctx(dim=3), at(T0))
    counter, _ = run(Incr("ns", "k", 1), None, ctx(), at(T0))
    with pytest.raises(WrongType):
        execute(Put("ns", "k", "v"), counter, ctx(), at(T0 + 1))
    with pytest.raises(WrongType):
        execute(SAdd("ns", "k", ["m"]), counter, ctx(), at(T0 + 1))


def test_a_delete_of_nothing_writes_nothing_and_of_something_touches_every_member() -> None:
    out = execute(Delete("ns", "k"), None, ctx(), at(T0))
    assert out.delta is None and out.result == {"deleted": False}
    s, _ = run(SAdd("ns", "k", ["a", "b"]), None, ctx(), at(T0))
    out = execute(Delete("ns", "k"), s, ctx(), at(T0 + 1))
    assert out.result == {"deleted": True} and out.touched is ALL
    assert not s.join(out.delta).visible(T0 + 1)


def test_increments_count_and_refuse_overflow() -> None:
    c = ctx()
    e, out = run(Incr("ns", "k", 5), None, c, at(T0))
    e, out = run(Incr("ns", "k", -7), e, c, at(T0 + 1))
    assert out.result == {"value": -2}
    with pytest.raises(BadRequest):
        execute(Incr("ns", "k", 1 << 62), e, c, at(T0 + 2))
    with pytest.raises(BadRequest):
        execute(Incr("ns", "k", True), e, c, at(T0 + 2))


def test_set_adds_and_removes_report_what_changed_and_name_only_touched_members() -> None:
    c = ctx()
    e, out = run(SAdd("ns", "k", ["a", "b"]), None, c, at(T0))
    assert out.result == {"added": 2} and sorted(out.touched) == ["a", "b"]
    e, out = run(SAdd("ns", "k", ["b", "c"]), e, c, at(T0 + 1))
    assert out.result == {"added": 1}
    e, out = run(SRem("ns", "k", ["a", "zz"]), e, c, at(T0 + 2))
    assert out.result == {"removed": 1} and out.touched == ["a"]
    assert e.orset.members() == ["b", "c"]
    out = execute(SRem("ns", "k", ["zz"]), e, c, at(T0 + 3))
    assert out.delta is None


def test_an_expired_set_needs_every_member_loaded_before_its_next_add() -> None:
    c = ctx()
    e, _ = run(SAdd("ns", "k", ["a", "b"], ttl=1), None, c, at(T0))
    assert members_needed(SAdd("ns", "k", ["c"]), e, T0 + 10) == ["c"]
    assert members_needed(SAdd("ns", "k", ["c"]), e, T0 + 5000) is ALL
    e, out = run(SAdd("ns", "k", ["c"]), e, c, at(T0 + 5000))
    assert out.touched is ALL and e.orset.members() == ["c"]


def test_expire_changes_a_ttl_without_changing_the_value_for_every_kind() -> None:
    c = ctx()
    reg, _ = run(Put("ns", "r", {"v": 1}, meta={"m": 2}), None, c, at(T0))
    reg, out = run(Expire("ns", "r", 10), reg, c, at(T0 + 1))
    assert out.result == {"expires_at": T0 + 1 + 10_000}
    assert reg.reg.value == {"v": 1} and reg.reg.meta == {"m": 2}
    counter, _ = run(Incr("ns", "c", 3, ttl=5), None, c, at(T0))
    counter, _ = run(Expire("ns", "c", 0), counter, c, at(T0 + 1))
    assert counter.counter.value() == 3 and counter.counter.expires_at is None
    assert counter.visible(T0 + 3_600_000)
    s, _ = run(SAdd("ns", "s", ["a"]), None, c, at(T0))
    s, _ = run(Expire("ns", "s", 2), s, c, at(T0 + 1))
    assert s.visible(T0 + 1000) and not s.visible(T0 + 3000)
    with pytest.raises(NotFound):
        execute(Expire("ns", "missing", 5), None, c, at(T0))


def test_expire_refuses_to_pick_a_winner_among_concurrent_versions() -> None:
    c = ctx("mv")
    a, _ = run(Put("ns", "k", "a"), None, c, at(T0))
    b, _ = run(Put("ns", "k", "b"), None, CommandContext("n2", c.namespace, LIMITS), at(T0))
    with pytest.raises(Conflict):
        execute(Expire("ns", "k", 5), a.join(b), c, at(T0 + 1))
    one, out = run(Expire("ns", "k", 5), a, c, at(T0 + 1))
    assert [v.value for _, v in one.mv.siblings(T0 + 2)] == ["a"]
    assert wall_ms(out.delta.ts) == T0 + 1
