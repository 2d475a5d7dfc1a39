"""The engine's guarantees: a failed operation leaves no trace, what it publishes is a
snapshot, stale deltas cannot bring collected data back, and the Merkle index follows
the trees' leaf layout."""

from __future__ import annotations

from collections.abc import Callable

from swarmnode.crdt.codec import decode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts
from swarmnode.replication.merkle import leaf_bits, leaf_of
from swarmnode.storage import layout as L
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Delete, Merge, Put, SAdd

from .conftest import GRACE_S
from .support import T0, apply, assert_counts_exact, fails, ok, sweep_all, view

GRACE_MS = int(GRACE_S * 1000)


def test_a_failed_operation_leaves_counts_feed_position_and_clock_as_they_were(
    store: Store,
) -> None:
    ok(store, Put("default", "k", "v", ttl=1), T0)
    later = T0 + GRACE_MS + 5000  # the entry is collectable: an op on it drops it first
    before = (store.ns_stats("default"), store.seq, store.hlc.last, store.catalog)
    err = fails(store, Put("default", "k", "x" * (store.config.max_value_bytes + 1)), later)
    assert err.code == "too_large"
    assert (store.ns_stats("default"), store.seq, store.hlc.last) == before[:3]
    assert store.catalog is before[3], "nothing was published for a batch that changed nothing"
    # The same drop by a successful operation is counted.
    ok(store, Put("default", "k", "w"), later)
    assert store.seq > before[1]
    sweep_all(store, later)
    assert_counts_exact(store, later)


def test_one_failure_in_a_batch_does_not_undo_or_distort_the_others(store: Store) -> None:
    results = store.apply(
        [
            Put("default", "a", 1),
            Put("default", "b", "x" * (store.config.max_value_bytes + 1)),
            SAdd("default", "c", ["m"]),
        ],
        T0,
    )
    assert [r.error.code if r.error else None for r in results] == [None, "too_large", None]
    assert store.ns_stats("default")["entries"] == 2
    seqs = [c.seq for r in results for c in r.changes]
    assert seqs == [1, 2], "the failed operation took no change-feed position"
    assert [s for s, _, _ in store.changes_since(0)] == [1, 2]


def test_a_batch_commits_what_its_operations_one_batch_each_would(
    open_store: Callable[..., Store],
) -> None:
    """Whether a batch's operations share its transaction or fail and run again one by
    one, its results and what it stores are those of the same operations applied alone."""
    too_big = "x" * 10_000_000
    rounds = [
        [Put("default", f"k{i}", i) for i in range(20)],
        [Put("default", "k1", "a"), Put("default", "k2", too_big), SAdd("default", "s", ["m"])],
        [Put("default", "k3", "b"), Delete("default", "k4"), SAdd("default", "k5", ["x"])],
        [Put("default", f"k{i}", -i, ttl=60) for i in range(10, 30)],
        *[[Put("default", f"r{j}", j), Put("default", f"r{j}", too_big)] for j in range(12)],
        [Put("default", "k6", "c"), Put("default", "e", 1, ttl=1)],
        # e is collectable by now: the failing put drops it before it fails, and that
        # drop must go with the failure.
        [Put("default", "k7", "d"), Put("default", "e", too_big), Put("default", "k8", 8)],
    ]
    batched, alone = open_store("batched"), open_store("alone")
    for n, ops in enumerate(rounds):
        now = T0 + 1000 * n + (GRACE_MS + 5000 if n == len(rounds) - 1 else 0)
        got = batched.apply(ops, now)
        want = [alone.apply([op], now)[0] for op in ops]
        assert [r.error.code if r.error else None for r in got] == [
            r.error.code if r.error else None for r in want
        ]
        assert [len(r.changes) for r in got] == [len(r.changes) for r in want]
    end = T0 + 1000 * len(rounds) + GRACE_MS + 5000
    keys = {op.key for ops in rounds for op in ops}
    assert {k: view(batched, "default", k, end) for k in keys} == {
        k: view(alone, "default", k, end) for k in keys
    }
    assert batched.ns_stats("default") == alone.ns_stats("default")
    assert batched.seq == alone.seq
    sweep_all(batched, end)
    assert_counts_exact(batched, end)


def test_a_batch_of_peer_states_with_one_refused_commits_what_each_alone_would(
    open_store: Callable[..., Store],
) -> None:
    """Peers' states share the batch's transaction with client writes; one that fails
    (a key over the limit) fails alone, and the batch stores what one batch each would."""
    peer = open_store("peer")
    deltas = [
        change.delta
        for i, op in enumerate(
            [Put("default", "p0", 0), SAdd("default", "p1", ["m", "n"]), Put("default", "p2", 2)]
        )
        for change in peer.apply([op], T0 + i)[0].changes
    ]
    too_long = "x" * (peer.config.max_key_bytes + 1)
    rounds = [
        [Merge("default", f"p{i}", d, full=False) for i, d in enumerate(deltas)],
        [
            Merge("default", "p0", deltas[2], full=True),
            Merge("default", too_long, deltas[0], full=False),
            Put("default", "p3", 3),
            Merge("default", "p1", deltas[1], full=False),
        ],
    ]
    batched, alone = open_store("batched"), open_store("alone")
    for n, ops in enumerate(rounds):
        now = T0 + 1000 * (n + 1)
        got = batched.apply(ops, now)
        want = [alone.apply([op], now)[0] for op in ops]
        assert [(r.value, r.error.code if r.error else None) for r in got] == [
            (r.value, r.error.code if r.error else None) for r in want
        ]
    assert got[1].error is not None and got[1].error.code == "too_large"
    end = T0 + 5000
    keys = ["p0", "p1", "p2", "p3"]
    assert {k: view(batched, "default", k, end) for k in keys} == {
        k: view(alone, "default", k, end) for k in keys
    }
    assert batched.ns_stats("default") == alone.ns_stats("default")
    assert batched.seq == alone.seq
    assert_counts_exact(batched, end)


def test_a_published_catalog_never_changes_after_later_commits(store: Store) -> None:
    ok(store, Put("default", "a", 1), T0)
    first = store.catalog
    counts = dict(first.counts)
    ok(store, Put("default", "b", 2), T0 + 1)
    assert dict(first.counts) == counts
    assert store.catalog is not first
    assert store.catalog.ns_stats("default")["entries"] == 2


def test_a_replayed_delta_cannot_bring_back_an_entry_whose_tombstone_was_collected(
    open_store: Callable[..., Store],
) -> None:
    writer, replica = open_store("writer"), open_store("replica")
    [put] = writer.apply([Put("default", "k", "secret")], T0)[0].changes
    delta = put.delta
    assert ok(replica, Merge("default", "k", delta, full=False), T0 + 10) == {"applied": True}
    [deleted] = writer.apply([Delete("default", "k")], T0 + 1000)[0].changes
    ok(replica, Merge("default", "k", deleted.delta, full=False), T0 + 1010)
    after_grace = T0 + 1000 + GRACE_MS + 10_000
    sweep_all(replica, after_grace)
    assert replica.get("default", "k") is None, "the tombstone was collected"
    # The captured put arrives again, as a replay or a late duplicate would.
    result = apply(replica, Merge("default", "k", delta, full=False), after_grace)
    assert result.value == {"applied": False} and result.note == "stale_delta"
    assert replica.get("default", "k") is None
    assert view(replica, "default", "k", after_grace) is None


def test_old_deltas_without_live_data_and_fresh_ones_are_still_taken(store: Store) -> None:
    now = T0 + 10 * GRACE_MS
    old_delete = Entry().delete(make_ts(now - 2 * GRACE_MS), "peer")
    old_delete.reg = (
        Entry()
        .put_lww(make_ts(now - 2 * GRACE_MS), "peer", "x")
        .delete(make_ts(now - 2 * GRACE_MS), "peer")
        .reg
    )
    result = apply(store, Merge("default", "k", old_delete, full=False), now)
    assert result.note != "stale_delta"
    fresh = Entry().put_lww(make_ts(now - 1000), "peer", "v")
    assert ok(store, Merge("default", "f", fresh, full=False), now) == {"applied": True}
    # A full state (anti-entropy) of a long-lived entry is never stale.
    ancient = Entry().put_lww(make_ts(now - 5 * GRACE_MS), "peer", "old but live")
    assert ok(store, Merge("default", "a", ancient, full=True), now) == {"applied": True}


def test_the_merkle_index_takes_the_leaf_layout_it_is_given_and_rekeys_on_change(
    tmp_path,
) -> None:
    from swarmnode.storage.config import StoreConfig

    cfg = StoreConfig(sync=False)
    small = leaf_bits(4, 3)
    store = Store(tmp_path / "s", cfg, leaf_bits=small)
    keys = [f"key{i}" for i in range(200)]
    store.apply([Put("default", k, i) for i, k in enumerate(keys)], T0)
    leaves = {k: leaf for k, leaf in _leaves(store, "default").items()}
    assert leaves == {k: leaf_of(k, small) for k in keys}
    store.close()
    default = leaf_bits(16, 4)
    store = Store(tmp_path / "s", cfg, leaf_bits=default)
    try:
        assert _leaves(store, "default") == {k: leaf_of(k, default) for k in keys}
        digests = dict(store.digests("default"))
        with store.read() as txn:
            for k in keys:
                rec = L.unpack_record(txn.get(L.entry_key("default", k), db=store.db["entries"]))
                assert digests[k] == rec.digest
                assert decode_entry(rec.header).reg.value == keys.index(k)
        assert sorted(k for k, _ in store.leaf_entries("default", 0, (1 << default) - 1)) == sorted(
            keys
        )
    finally:
        store.close()


def _leaves(store: Store, ns: str) -> dict[str, int]:
    bound = L.ns_prefix(ns)
    out = {}
    with store.read() as txn, txn.cursor(db=store.db["merkle"]) as cur:
        if cur.set_range(bound):
            for k, v in cur:
                if not k.startswith(bound):
                    break
                leaf, key, _ = L.unpack_merkle(k, v, len(bound))
                out[key] = leaf
    return out
