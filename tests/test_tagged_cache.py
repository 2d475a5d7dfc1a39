"""The vector cache keeps to its byte budget and drops the least recently used first."""

from __future__ import annotations

import numpy as np

from swarmnode.tagged_cache import ITEM_OVERHEAD, TaggedCache


def test_cache_holds_its_budget_and_evicts_the_least_recently_used() -> None:
    one = np.zeros(384, dtype=np.float32)
    cache = TaggedCache(capacity=3 * (one.nbytes + ITEM_OVERHEAD))
    for name in ("a", "b", "c"):
        cache.put(("t", "m", name), one)
    assert cache.get(("t", "m", "a")) is not None  # "a" is now the most recent
    cache.put(("t", "m", "d"), one)
    assert cache.get(("t", "m", "b")) is None
    assert all(cache.get(("t", "m", n)) is not None for n in ("a", "c", "d"))
    assert cache.stats()["bytes"] <= cache.capacity


def test_a_stale_version_is_a_miss_and_a_namespace_can_be_dropped() -> None:
    cache = TaggedCache(capacity=1 << 20)
    cache.put(("e", "docs", "k"), "entry-v1", tag=b"digest-1", nbytes=100)
    assert cache.get(("e", "docs", "k"), b"digest-2") is None
    assert cache.get(("e", "docs", "k"), b"digest-1") == "entry-v1"
    cache.put(("e", "other", "k"), "x", tag=b"d", nbytes=100)
    cache.discard_prefix(("e", "docs"))
    assert cache.get(("e", "docs", "k"), b"digest-1") is None
    assert cache.get(("e", "other", "k"), b"d") == "x"
    assert cache.stats()["items"] == 1


def test_many_lookups_at_once_answer_and_count_as_one_by_one_and_refresh_recency() -> None:
    one = np.zeros(384, dtype=np.float32)
    cache = TaggedCache(capacity=3 * (one.nbytes + ITEM_OVERHEAD))
    for name in ("a", "b", "c"):
        cache.put(("e", "docs", name), one, tag=name.encode())
    found = cache.get_many(
        [("e", "docs", "a"), ("e", "docs", "b"), ("e", "docs", "zz")], [b"a", b"old", b"zz"]
    )
    assert found[0] is one and found[1:] == [None, None]
    assert (cache.stats()["hits"], cache.stats()["misses"]) == (1, 2)
    cache.put(("e", "docs", "d"), one, tag=b"d")  # evicts "b": "a" was just used
    assert cache.get(("e", "docs", "a"), b"a") is one
    assert cache.get(("e", "docs", "b"), b"b") is None
