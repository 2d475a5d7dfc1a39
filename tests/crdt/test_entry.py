"""Entry: deletes against concurrent writes per kind, expiry, tombstone collection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import COUNTER, REGISTER, SET, Entry, Version, encode_entry, make_ts

from .histories import KIND_OPS, ExpiringCluster, expiring_histories, visible_reads

GRACE = 100


def ts(wall: int, logical: int = 0) -> int:
    return make_ts(wall, logical)


def test_lww_delete_against_a_concurrent_write_keeps_the_later_one() -> None:
    base = Entry().join(Entry().put_lww(ts(10), "a", "old"))
    earlier_write = base.put_lww(ts(19), "b", "new")
    delete = base.delete(ts(20), "a")
    assert not base.join(earlier_write).join(delete).visible(30)
    later_write = base.put_lww(ts(21), "b", "newer")
    merged = base.join(delete).join(later_write)
    assert merged.reg.value == "newer"
    assert merged.visible(30)


def test_mv_delete_removes_what_it_saw_and_a_concurrent_write_survives() -> None:
    base = Entry().join(Entry().put_mv(ts(10), "a", Version("seen", ts(10))))
    delete = base.delete(ts(20), "a")
    concurrent = base.put_mv(ts(15), "b", Version("unseen", ts(15)))
    merged = base.join(delete).join(concurrent)
    assert [v.value for _, v in merged.mv.siblings()] == ["unseen"]
    assert merged.live_kinds(30) == [REGISTER]


def test_counter_delete_zeroes_what_it_saw_and_a_concurrent_increment_survives() -> None:
    base = Entry()
    for node in "ab":
        base = base.join(base.incr(ts(10), node, 5, None, 10))
    delete = base.delete(ts(20), "a")
    concurrent = base.incr(ts(15), "b", 2, None, 15)
    merged = base.join(concurrent).join(delete)
    assert merged.counter.value() == 2
    assert merged.live_kinds(30) == [COUNTER]
    assert not base.join(delete).visible(30)


def test_set_delete_removes_what_it_saw_and_a_concurrent_add_survives() -> None:
    base = Entry().join(Entry().sadd(ts(10), "a", ["x", "y"], None, 10))
    delete = base.delete(ts(20), "a")
    concurrent = base.sadd(ts(15), "b", ["y", "z"], None, 15)
    merged = base.join(delete).join(concurrent)
    assert merged.orset.members() == ["y", "z"]
    assert merged.live_kinds(30) == [SET]


def test_writes_of_different_kinds_on_different_replicas_both_survive() -> None:
    merged = Entry().put_lww(ts(10), "a", "v").join(Entry().incr(ts(10), "b", 3, None, 10))
    assert merged.live_kinds(20) == [REGISTER, COUNTER]


def test_each_kind_is_invisible_from_its_expiry_on() -> None:
    writes = {
        REGISTER: Entry().put_lww(ts(10), "a", "v", expires_at=50),
        "mv": Entry().put_mv(ts(10), "a", Version("v", ts(10), expires_at=50)),
        COUNTER: Entry().incr(ts(10), "a", 1, 50, 10),
        SET: Entry().sadd(ts(10), "a", ["x"], 50, 10),
    }
    for entry in writes.values():
        assert entry.visible(49)
        assert not entry.visible(50)
        assert entry.expires_at() == 50


def test_an_expired_mv_sibling_disappears_while_its_live_sibling_stays() -> None:
    short = Entry().put_mv(ts(10), "a", Version("short", ts(10), expires_at=20))
    long = Entry().put_mv(ts(10), "b", Version("long", ts(10), expires_at=90))
    merged = short.join(long)
    assert [v.value for _, v in merged.mv.siblings(15)] == ["short", "long"]
    assert [v.value for _, v in merged.mv.siblings(25)] == ["long"]
    assert merged.expires_at() == 90


def test_a_write_after_expiry_starts_the_counter_and_the_set_from_nothing() -> None:
    counter = Entry().join(Entry().incr(ts(10), "a", 5, 20, 10))
    counter = counter.join(counter.incr(ts(30), "a", 2, 40, 30))
    assert counter.counter.value() == 2
    s = Entry().join(Entry().sadd(ts(10), "a", ["x"], 20, 10))
    s = s.join(s.sadd(ts(30), "a", ["y"], 40, 30))
    assert s.orset.members() == ["y"]


def test_a_set_write_after_expiry_names_the_members_it_clears() -> None:
    # The store applies a set delta by loading only the members it names.
    s = Entry().join(Entry().sadd(ts(10), "a", ["x", "y"], 20, 10))
    delta = s.sadd(ts(30), "a", ["y"], 40, 30)
    assert set(delta.orset.elems) == {"x", "y"}
    assert delta.orset.elems["x"] == frozenset()


def test_collectable_only_after_the_grace_period_past_death() -> None:
    live = Entry().join(Entry().put_lww(ts(10), "a", "v"))
    assert not live.collectable(10**9, GRACE)
    deleted = live.join(live.delete(ts(20, 3), "a"))
    assert deleted.dead_since() == 20
    assert not deleted.collectable(20 + GRACE - 1, GRACE)
    assert deleted.collectable(20 + GRACE, GRACE)


def test_an_expired_entry_is_collectable_a_grace_period_after_expiry_even_unstripped() -> None:
    entry = Entry().join(Entry().sadd(ts(10), "a", ["x"], 60, 10))
    assert entry.dead_since() == 60
    assert not entry.collectable(60 + GRACE - 1, GRACE)
    assert entry.collectable(60 + GRACE, GRACE)


def test_a_reset_with_a_surviving_concurrent_increment_is_not_collectable() -> None:
    base = Entry().join(Entry().incr(ts(10), "a", 1, None, 10))
    merged = base.join(base.delete(ts(20), "a")).join(base.incr(ts(15), "b", 1, None, 15))
    assert not merged.collectable(10**9, GRACE)


@pytest.mark.parametrize("kind", KIND_OPS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_expiry_never_changes_reads_and_replicas_expiring_apart_converge(
    kind: str, data: st.DataObject
) -> None:
    cluster = ExpiringCluster()
    for op in data.draw(expiring_histories(kind)):
        cluster.run(op)
    end = max(cluster.now) + 10
    everything = cluster.gossiped + cluster.local
    results = []
    for r in cluster.replicas:
        order = data.draw(st.permutations(everything + everything[: len(everything) // 2]))
        state = r.state
        for event in order:
            state = state.join(event.delta)
        expired = state.expire(end)
        if expired is not None:
            state = state.join(expired)
        assert state.expire(end) is None
        results.append(state)
    joined = Entry()
    for r in cluster.replicas:
        joined = joined.join(r.state)
    expired = joined.expire(end)
    if expired is not None:
        joined = joined.join(expired)
    for state in results:
        assert state == joined
        assert encode_entry(state) == encode_entry(joined)
        assert visible_reads(state, end) == visible_reads(joined, end)
        assert state.collectable(end + 10 + GRACE, GRACE) == (not state.visible(end + 10 + GRACE))


@settings(max_examples=120, deadline=None)
@given(data=st.data(), t1=st.integers(0, 30), t2=st.integers(0, 30))
def test_expire_deltas_from_different_moments_join_to_the_latest(
    data: st.DataObject, t1: int, t2: int
) -> None:
    cluster = ExpiringCluster()
    for op in data.draw(expiring_histories("mixed")):
        cluster.run(op)
    state = cluster.replicas[0].state
    for r in cluster.replicas[1:]:
        state = state.join(r.state)
    both = state
    for moment in (t1, t2):
        delta = state.expire(moment)
        if delta is not None:
            both = both.join(delta)
    latest = state.expire(max(t1, t2))
    assert both == (state if latest is None else state.join(latest))


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.sampled_from(["put", "put_ttl", "delete", "incr", "sadd"]), min_size=1, max_size=4
    ),
    now=st.integers(0, 200),
)
def test_a_lasting_register_never_falls_due(ops: list[str], now: int) -> None:
    """What the engine's sweeper schedule skips for `lasting_register` entries is what
    `next_due` and `next_expiry` would have said: nothing, ever. And a plain write without
    a TTL over a register's history is such an entry."""
    entry = Entry()
    for i, op in enumerate(ops, 1):
        at = 10 * i
        if op == "put":
            delta = entry.put_lww(ts(at), "a", i)
        elif op == "put_ttl":
            delta = entry.put_lww(ts(at), "a", i, expires_at=at + 50)
        elif op == "delete":
            delta = entry.delete(ts(at), "a")
        elif op == "incr":
            delta = entry.incr(ts(at), "a", 1, None, at)
        else:
            delta = entry.sadd(ts(at), "a", ["m"], None, at)
        entry = entry.join(delta)
    if ops[-1] == "put" and not {"incr", "sadd"} & set(ops):
        assert entry.lasting_register()
    if entry.lasting_register():
        assert entry.next_due(now, GRACE) is None
        assert entry.next_expiry(now) is None
