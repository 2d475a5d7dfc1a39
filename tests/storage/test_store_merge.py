"""States from peers: deltas and full states merged into the store, siblings, namespace deletes,
and the Merkle digests anti-entropy compares."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from swarmnode.crdt.codec import decode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts
from swarmnode.crdt.mvreg import Version
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import (
    DefineNs,
    Delete,
    DeleteNs,
    Incr,
    Merge,
    Purge,
    Put,
    SAdd,
    SRem,
)

from .support import T0, apply, assert_counts_exact, fails, ok, view

# --- single merges ---------------------------------------------------------------


def test_a_newer_remote_write_wins_and_an_older_or_repeated_one_changes_nothing(store) -> None:
    ok(store, Put("default", "k", "local"), T0)
    newer = Entry().put_lww(make_ts(T0 + 5), "peer", "remote")
    assert ok(store, Merge("default", "k", newer, full=False), T0 + 10) == {"applied": True}
    assert view(store, "default", "k", T0 + 10)["value"] == "remote"
    assert ok(store, Merge("default", "k", newer, full=False), T0 + 10) == {"applied": False}
    older = Entry().put_lww(make_ts(T0 - 5), "peer", "stale")
    assert ok(store, Merge("default", "k", older, full=True), T0 + 10) == {"applied": False}
    assert view(store, "default", "k", T0 + 10)["value"] == "remote"


def test_a_remote_delete_hides_the_older_local_write(store: Store) -> None:
    ok(store, Put("default", "k", "local"), T0)
    local = store.get("default", "k")
    tombstone = local.delete(make_ts(T0 + 5), "peer")
    assert ok(store, Merge("default", "k", tombstone, full=False), T0 + 10)["applied"]
    assert view(store, "default", "k", T0 + 10) is None
    assert store.ns_stats("default")["tombstones"] == 1


def test_remote_counter_increments_add_up_with_local_ones(store: Store) -> None:
    ok(store, Incr("default", "c", 3))
    peer = Entry().incr(make_ts(T0 + 1), "peer.1", 4, None, T0)
    ok(store, Merge("default", "c", peer, full=False), T0 + 2)
    assert ok(store, Incr("default", "c", 1), T0 + 3)["value"] == 8


def test_a_concurrent_remote_add_survives_a_local_remove(store: Store) -> None:
    ok(store, SAdd("default", "s", ["a", "b"]))
    ok(store, SRem("default", "s", ["a"]), T0 + 1)
    concurrent = Entry().sadd(make_ts(T0 + 1), "peer.1", ["a", "c"], None, T0)
    ok(store, Merge("default", "s", concurrent, full=False), T0 + 2)
    assert view(store, "default", "s", T0 + 2)["value"] == ["a", "b", "c"]


def test_a_remote_timestamp_too_far_ahead_is_refused_as_clock_skew(store: Store) -> None:
    far = Entry().put_lww(make_ts(T0 + 60_000), "peer", "future")
    err = fails(store, Merge("default", "k", far, full=False), T0)
    assert err.code == "clock_skew"
    assert store.get("default", "k") is None
    assert ok(store, Put("default", "k", 1), T0)["ts"] < make_ts(T0 + 1)


def test_mv_namespaces_keep_concurrent_writes_as_siblings(store: Store) -> None:
    ok(store, DefineNs("team", {"policy": "mv"}))
    ok(store, Put("team", "plan", "ours"), T0 + 10)
    theirs = Entry().put_mv(make_ts(T0 + 5), "peer.1", Version("theirs", make_ts(T0 + 5)))
    assert ok(store, Merge("team", "plan", theirs, full=False), T0 + 20)["applied"]
    got = view(store, "team", "plan", T0 + 20)
    assert got["conflict"] is True
    assert [s["value"] for s in got["siblings"]] == ["theirs", "ours"]
    assert {s["writer"] for s in got["siblings"]} == {"peer", store.node_id}

    ok(store, Put("team", "plan", "merged"), T0 + 30)  # a write that saw both replaces both
    got = view(store, "team", "plan", T0 + 30)
    assert got["value"] == "merged" and got["conflict"] is False


def test_lww_namespaces_pick_one_of_concurrent_writes(store: Store) -> None:
    ok(store, Put("default", "plan", "ours"), T0 + 10)
    theirs = Entry().put_lww(make_ts(T0 + 5), "peer", "theirs")
    ok(store, Merge("default", "plan", theirs, full=False), T0 + 20)
    got = view(store, "default", "plan", T0 + 20)
    assert got["value"] == "ours" and "siblings" not in got


# --- namespace delete --------------------------------------------------------------


def test_ns_delete_clears_every_entry_and_later_writes_live_again(store: Store) -> None:
    ok(store, DefineNs("team", {"ttl": 60, "policy": "mv"}))
    for i in range(5):
        ok(store, Put("team", f"k{i}", i))
    ok(store, Incr("team", "count", 2))
    ok(store, SAdd("team", "set", ["a"]))
    result = ok(store, DeleteNs("team"), T0 + 1)
    assert result["deleted"] is True
    assert all(view(store, "team", f"k{i}", T0 + 1) is None for i in range(5))
    assert view(store, "team", "count", T0 + 1) is None

    while apply(store, Purge("team", limit=3), T0 + 2).more:
        pass
    assert store.ns_stats("team") == {"entries": 0, "stored": 0, "tombstones": 0, "bytes": 0}
    assert_counts_exact(store, T0 + 2)

    assert ok(store, Put("team", "k0", "again"), T0 + 3)["expires_at"] is None  # policy gone
    assert ok(store, Incr("team", "count"), T0 + 3)["value"] == 1
    assert view(store, "team", "k0", T0 + 3)["value"] == "again"
    assert view(store, "team", "k1", T0 + 3) is None
    assert "team" in store.namespace_names()


def test_a_deleted_namespace_refuses_older_remote_states_but_takes_newer_ones(store) -> None:
    ok(store, Put("team", "k", 1), T0)
    ok(store, DeleteNs("team"), T0 + 10)
    before = Entry().put_lww(make_ts(T0 + 5), "peer", "from before the delete")
    assert ok(store, Merge("team", "old", before, full=True), T0 + 20) == {"applied": False}
    after = Entry().put_lww(make_ts(T0 + 15), "peer", "from after")
    assert ok(store, Merge("team", "new", after, full=True), T0 + 20) == {"applied": True}
    assert view(store, "team", "new", T0 + 20)["value"] == "from after"
    assert view(store, "team", "k", T0 + 20) is None


def test_a_namespace_can_be_defined_again_after_delete(store: Store) -> None:
    ok(store, DefineNs("team", {"ttl": 60}))
    ok(store, DeleteNs("team"), T0 + 1)
    assert store.namespace("team").deleted
    ok(store, DefineNs("team", {"ttl": 30}), T0 + 2)
    assert not store.namespace("team").deleted and store.namespace("team").ttl == 30
    assert ok(store, Put("team", "k", 1), T0 + 3)["expires_at"] == T0 + 3 + 30_000


# --- replicas converge, byte for byte ----------------------------------------------

HISTORY = [
    DefineNs("team", {"policy": "mv"}),
    Put("default", "a", 1),
    Put("default", "a", {"x": [1, 2]}, meta={"by": "me"}),
    Incr("default", "c", 5),
    Incr("default", "c", -2),
    SAdd("default", "s", ["x", "y", "z"]),
    SRem("default", "s", ["y"]),
    SAdd("default", "s", ["y", "w"]),
    Put("team", "m", "v1"),
    Put("team", "m", "v2"),
    Put("default", "gone", 1),
    Delete("default", "gone"),
    SAdd("default", "s2", ["q"]),
    Delete("default", "s2"),
    Put("swarm", "t", "expiring", ttl=50),
    Incr("tasks", "n", 1),
]


def _run_history(store: Store) -> list[tuple[str, str, Entry]]:
    """Apply HISTORY locally, one op per ms; the deltas it would gossip."""
    deltas = []
    for i, op in enumerate(HISTORY):
        result = apply(store, op, T0 + i)
        assert result.error is None, (op, result.error)
        deltas += [(ch.ns, ch.key, ch.delta) for ch in result.changes if ch.delta is not None]
    return deltas


def _digests(store: Store) -> dict[str, dict[str, bytes]]:
    return {ns: dict(store.digests(ns)) for ns in store.data_namespaces()}


def _every_state(store: Store) -> list[tuple[str, str, Entry]]:
    out = []
    for ns in store.data_namespaces():
        with store.read() as txn:
            keys = [key for key, _ in store.scan(ns, txn)]
        out += [(ns, key, store.get(ns, key)) for key in keys]
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replicas_reached_by_deltas_in_any_order_or_by_full_states_have_equal_digests(
    open_store: Callable[..., Store], seed: int
) -> None:
    origin, by_deltas, by_states = open_store("a"), open_store("b"), open_store("c")
    deltas = _run_history(origin)
    now = T0 + len(HISTORY)
    random.Random(seed).shuffle(deltas)
    for ns, key, delta in deltas + deltas[: len(deltas) // 2]:  # with duplicates
        ok(by_deltas, Merge(ns, key, delta, full=False), now)
    for ns, key, state in _every_state(origin):
        ok(by_states, Merge(ns, key, state, full=True), now)

    expected = _digests(origin)
    assert set(expected) == {"_ns", "default", "swarm", "tasks", "team"}
    assert _digests(by_deltas) == expected
    assert _digests(by_states) == expected
    for ns in expected:
        assert by_deltas.ns_stats(ns) == origin.ns_stats(ns) == by_states.ns_stats(ns)
        assert by_states.leaf_entries(ns, 0, 2**32) == origin.leaf_entries(ns, 0, 2**32)
    for replica in (origin, by_deltas, by_states):
        assert_counts_exact(replica, now)


def test_digests_differ_when_states_differ_and_agree_again_after_repair(open_store) -> None:
    a, b = open_store("a"), open_store("b")
    ok(a, SAdd("default", "s", ["x", "y"]))
    for ns, key, state in _every_state(a):
        ok(b, Merge(ns, key, state, full=True))
    assert _digests(a) == _digests(b)
    ok(a, SRem("default", "s", ["x"]), T0 + 1)
    assert _digests(a)["default"]["s"] != _digests(b)["default"]["s"]
    for ns, key, state in _every_state(a):
        ok(b, Merge(ns, key, state, full=True), T0 + 2)
    assert _digests(a) == _digests(b)


def test_states_served_to_peers_decode_to_what_is_stored(store: Store) -> None:
    ok(store, SAdd("default", "s", ["a", "b"]))
    ok(store, Put("default", "r", "v"))
    served = dict(store.states("default", ["s", "r", "missing"]))
    assert set(served) == {"s", "r"}
    assert decode_entry(served["s"]) == store.get("default", "s")
    assert decode_entry(served["r"]) == store.get("default", "r")


def test_a_member_named_twice_in_one_add_is_stored_once_with_the_digest_a_replica_computes(
    open_store,
) -> None:
    a, b = open_store("a"), open_store("b")
    result = apply(a, SAdd("default", "s", ["x", "x", "y"]), T0)
    assert result.error is None
    [change] = result.changes
    ok(b, Merge("default", "s", change.delta, full=False), T0)
    assert a.get("default", "s") == b.get("default", "s")
    assert a.states("default", ["s"]) == b.states("default", ["s"])
    assert dict(a.digests("default")) == dict(b.digests("default"))
    assert_counts_exact(a, T0)
