"""Expiry and collection in virtual time: TTLs, the sweeper, tombstones and the grace period."""

from __future__ import annotations

import pytest

from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts, wall_ms
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import DefineNs, Delete, Incr, Merge, Put, SAdd, Sweep
from swarmnode.storage.views import summary_view

from .conftest import GRACE_S
from .support import SECOND, T0, apply, fails, ok, sweep_all, view

GRACE_MS = int(GRACE_S * 1000)
# The sweeper strips and collects only once the max clock offset (500 ms) has passed.
OFFSET_MS = 500


def test_a_per_write_ttl_overrides_the_namespace_default(store: Store) -> None:
    assert ok(store, Put("agents", "default", 1))["expires_at"] == T0 + 3600 * SECOND
    assert ok(store, Put("agents", "short", 1, ttl=2))["expires_at"] == T0 + 2 * SECOND
    assert ok(store, Put("agents", "forever", 1, ttl=0))["expires_at"] is None
    assert ok(store, Put("default", "some", 1, ttl=0.5))["expires_at"] == T0 + 500
    ok(store, DefineNs("team", {"ttl": 60}))
    assert ok(store, Put("team", "k", 1))["expires_at"] == T0 + 60 * SECOND
    assert ok(store, Put("team", "k2", 1, ttl=5))["expires_at"] == T0 + 5 * SECOND


@pytest.mark.parametrize(
    "ttl", [-1, -0.001, "60", float("nan"), float("inf"), True, [1], 10 * 365 * 86400 + 1]
)
@pytest.mark.parametrize(
    "make",
    [
        lambda ttl: Put("default", "k", 1, ttl=ttl),
        lambda ttl: Incr("default", "k", 1, ttl=ttl),
        lambda ttl: SAdd("default", "k", ["m"], ttl=ttl),
    ],
    ids=["put", "incr", "sadd"],
)
def test_bad_ttls_are_refused_and_nothing_is_written(store: Store, make, ttl) -> None:
    assert fails(store, make(ttl)).code == "bad_request"
    assert store.get("default", "k") is None


def test_counters_and_sets_take_ttls_too(store: Store) -> None:
    ok(store, Incr("default", "c", 1, ttl=2))
    ok(store, SAdd("default", "s", ["a"], ttl=2))
    ok(store, Incr("notifications", "n"))
    for key in ("c", "s"):
        assert view(store, "default", key, T0 + 1999) is not None
        assert view(store, "default", key, T0 + 2000) is None
    assert view(store, "notifications", "n", T0 + 300 * SECOND) is None


def test_an_expired_entry_is_invisible_at_once_before_any_sweep(store: Store) -> None:
    ok(store, Put("default", "k", "v", ttl=1))
    assert view(store, "default", "k", T0 + 999)["value"] == "v"
    assert view(store, "default", "k", T0 + 1000) is None
    with store.read() as txn:
        [(key, entry)] = list(store.scan("default", txn))
    assert summary_view("default", key, entry, T0 + 1000, True) is None


def test_expiry_is_computed_from_the_writes_hlc_timestamp_not_the_local_clock(store) -> None:
    # A peer's write 400 ms ahead drags the clock forward: later local writes
    # are stamped after it, and their TTLs run from that stamp, as on the peer.
    ahead = make_ts(T0 + 400)
    remote = Entry().put_lww(ahead, "peer", "theirs")
    assert ok(store, Merge("default", "theirs", remote, full=True))["applied"]
    written = ok(store, Put("default", "mine", 1, ttl=1))
    assert wall_ms(written["ts"]) >= T0 + 400
    assert written["expires_at"] == wall_ms(written["ts"]) + 1000


def test_the_sweep_strips_expired_entries_and_collects_them_after_the_grace(store) -> None:
    ok(store, Put("notifications", "n", "x" * 1000))
    expiry = T0 + 300 * SECOND
    assert sweep_all(store, expiry - 1) == 0
    before = store.ns_stats("notifications")
    # At the expiry the entry stops counting as live (watchers hear of it) ...
    assert sweep_all(store, expiry) == 1
    after = store.ns_stats("notifications")
    assert (after["entries"], after["tombstones"]) == (0, 1)
    assert after["bytes"] == before["bytes"]
    # ... and once the max clock offset has passed, it is stripped to a tombstone.
    assert sweep_all(store, expiry + OFFSET_MS - 1) == 0
    assert sweep_all(store, expiry + OFFSET_MS) == 1
    after = store.ns_stats("notifications")
    assert after["bytes"] < before["bytes"] - 1000  # the value is gone, the tombstone stays
    stripped = store.get("notifications", "n")
    assert stripped is not None and stripped.reg.deleted and stripped.reg.value is None

    collect = expiry + GRACE_MS + OFFSET_MS
    assert sweep_all(store, collect - 1) == 0
    assert store.get("notifications", "n") is not None
    assert sweep_all(store, collect) == 1
    assert store.get("notifications", "n") is None
    assert store.ns_stats("notifications") == {
        "entries": 0,
        "stored": 0,
        "tombstones": 0,
        "bytes": 0,
    }


def test_tombstones_of_deletes_are_collected_after_the_grace_period(store: Store) -> None:
    ok(store, Put("default", "k", 1))
    ok(store, SAdd("default", "s", ["a", "b"]))
    ok(store, Delete("default", "k"), T0 + 10)
    ok(store, Delete("default", "s"), T0 + 10)
    assert store.ns_stats("default")["tombstones"] == 2
    sweep_all(store, T0 + 10 + GRACE_MS - 1)
    assert store.ns_stats("default")["tombstones"] == 2
    sweep_all(store, T0 + 10 + GRACE_MS + OFFSET_MS)
    assert store.ns_stats("default")["stored"] == 0
    assert store.get("default", "k") is None and store.get("default", "s") is None


def test_a_write_after_a_tombstone_is_collected_is_live(store: Store) -> None:
    ok(store, SAdd("default", "s", ["a"]))
    ok(store, Incr("default", "c", 5))
    ok(store, Delete("default", "s"), T0 + 1)
    ok(store, Delete("default", "c"), T0 + 1)
    later = T0 + 1 + GRACE_MS
    sweep_all(store, later)
    ok(store, SAdd("default", "s", ["a"]), later + 1)
    assert ok(store, Incr("default", "c", 2), later + 1)["value"] == 2
    assert view(store, "default", "s", later + 1)["value"] == ["a"]


def test_a_tombstone_past_its_grace_is_dropped_on_access_without_a_sweep(store) -> None:
    ok(store, Put("default", "k", 1))
    ok(store, Delete("default", "k"), T0 + 1)
    assert ok(store, Put("default", "k", 2, if_absent=True), T0 + 1 + GRACE_MS)
    assert view(store, "default", "k", T0 + 1 + GRACE_MS)["value"] == 2
    assert store.ns_stats("default")["stored"] == 1


def test_an_expired_counter_restarts_from_zero_and_an_expired_set_from_empty(store) -> None:
    ok(store, Incr("default", "c", 10, ttl=1))
    ok(store, SAdd("default", "s", ["old"], ttl=1))
    assert ok(store, Incr("default", "c", 1, ttl=10), T0 + 1000)["value"] == 1
    assert ok(store, SAdd("default", "s", ["new"], ttl=10), T0 + 1000)["added"] == 1
    assert view(store, "default", "s", T0 + 1000)["value"] == ["new"]


def test_rewriting_a_key_moves_its_expiry(store: Store) -> None:
    ok(store, Put("default", "k", 1, ttl=1))
    ok(store, Put("default", "k", 2, ttl=10), T0 + 500)
    assert sweep_all(store, T0 + 1000) == 0
    assert view(store, "default", "k", T0 + 1000)["value"] == 2
    ok(store, Put("default", "k", 3, ttl=0), T0 + 600)
    sweep_all(store, T0 + 11_000)
    assert view(store, "default", "k", T0 + 11_000)["value"] == 3


def test_a_remote_state_already_past_its_grace_is_not_applied(store: Store) -> None:
    old = Entry().put_lww(make_ts(T0), "peer", "stale", expires_at=T0 + 1000)
    result = apply(store, Merge("default", "k", old, full=True), T0 + 1000 + GRACE_MS)
    assert result.error is None and result.value == {"applied": False}
    assert store.get("default", "k") is None


def test_sweeps_are_bounded_and_report_more_work(store: Store) -> None:
    for i in range(30):
        ok(store, Put("default", f"k{i}", i, ttl=1))
    first = apply(store, Sweep(limit=10), T0 + 1000)
    assert first.value == {"processed": 10} and first.more
    assert sweep_all(store, T0 + 1000) == 20
    assert store.ns_stats("default")["entries"] == 0
