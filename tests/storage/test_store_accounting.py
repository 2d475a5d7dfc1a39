"""Per-namespace counts and bytes are kept incrementally; they must equal a full recount."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import (
    DefineNs,
    Delete,
    DeleteNs,
    Incr,
    Merge,
    Op,
    Purge,
    Put,
    SAdd,
    SRem,
)

from .conftest import GRACE_S
from .support import T0, apply, assert_counts_exact, ok, sweep_all

NAMESPACES = ["default", "team", "notifications"]
KEYS = [f"k{i}" for i in range(12)]
MEMBERS = [f"m{i}" for i in range(8)]
TTLS = [None, None, 0, 1, 3, 30]


def _random_op(rng: random.Random, now: int) -> Op:
    ns, key = rng.choice(NAMESPACES), rng.choice(KEYS)
    ttl = rng.choice(TTLS)
    roll = rng.random()
    if roll < 0.25:
        return Put(ns, key, "v" * rng.randrange(0, 300), ttl=ttl)
    if roll < 0.35:
        return Incr(ns, key, rng.randrange(-5, 6), ttl=ttl)
    if roll < 0.5:
        return SAdd(ns, key, rng.sample(MEMBERS, rng.randrange(1, 4)), ttl=ttl)
    if roll < 0.6:
        return SRem(ns, key, rng.sample(MEMBERS, rng.randrange(1, 4)))
    if roll < 0.75:
        return Delete(ns, key)
    if roll < 0.9:
        peer = Entry().put_lww(make_ts(now - rng.randrange(0, 5000)), "peer", rng.random())
        return Merge(ns, key, peer, full=rng.random() < 0.5)
    if roll < 0.95:
        return DefineNs("team", {"ttl": rng.choice([0, 2, 60])})
    return DeleteNs("team")


@pytest.mark.parametrize("seed", range(4))
def test_counts_and_bytes_equal_a_recount_through_a_random_history(
    open_store: Callable[..., Store], seed: int
) -> None:
    rng = random.Random(seed)
    store = open_store(sync=False)
    now = T0
    for step in range(250):
        now += rng.choice([0, 1, 10, 500, 1500, 4000])
        if step % 60 == 59:
            now += int(GRACE_S * 1000)  # let tombstones become collectable
        op = _random_op(rng, now)
        result = apply(store, op, now)
        assert result.error is None or result.error.code == "wrong_type", (op, result.error)
        if isinstance(op, DeleteNs):
            while apply(store, Purge("team", limit=5), now).more:
                pass
        sweep_all(store, now)
        assert_counts_exact(store, now)


def test_counts_survive_a_restart(open_store: Callable[..., Store]) -> None:
    store = open_store("s")
    for i in range(20):
        ok(store, Put("default", f"k{i}", "x" * i, ttl=1 if i % 2 else None))
        ok(store, SAdd("team", f"s{i}", [f"m{j}" for j in range(i + 1)]))
    ok(store, Delete("default", "k0"), T0 + 1)
    sweep_all(store, T0 + 1000)
    before = {ns: store.ns_stats(ns) for ns in ("default", "team", "_ns")}
    store.close()
    again = open_store("s")
    assert {ns: again.ns_stats(ns) for ns in before} == before
    assert_counts_exact(again, T0 + 1000)


def test_a_failed_operation_in_a_batch_changes_no_count(store: Store) -> None:
    ok(store, Put("default", "k", 1))
    results = store.apply(
        [Put("default", "a", 1), Incr("default", "k"), Put("default", "k" * 2000, 1)], T0
    )
    assert [r.error.code if r.error else None for r in results] == [None, "wrong_type", "too_large"]
    assert store.ns_stats("default")["entries"] == 2
    assert_counts_exact(store, T0)
