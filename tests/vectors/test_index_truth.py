"""The index stays true to the store: deletes, overwrites, expiry, replication, namespaces."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from swarmnode.storage.ops import Merge, Sweep
from swarmnode.vectors.cli import render_vsearch
from swarmnode.vectors.config import VectorConfig
from swarmnode.vectors.space import Space, Wanted

from .brute import assert_same, brute_force
from .harness import Harness

HNSW = dataclasses.replace(VectorConfig.local(), exact_below=0, ef_search=400)
SMALL_SHARDS = dataclasses.replace(HNSW, shard_max=64, initial_capacity=8, compact_below=0.5)


def vec(rng: np.random.Generator, dim: int = 8) -> np.ndarray:
    return rng.normal(size=dim).astype(np.float32)


async def put(h: Harness, key: str, v: np.ndarray, ns: str = "docs", **kw) -> None:
    await h.call("put", ns=ns, key=key, value=key, vector=v.tolist(), **kw)


async def put_expiring(h: Harness, n: int, expiring: Callable[[int], bool]) -> dict:
    """Put k0..k{n-1} (10 s TTL where `expiring(i)`); the vectors of those that never expire."""
    rng = np.random.default_rng(1)
    live = {}
    for i in range(n):
        v = vec(rng)
        if expiring(i):
            await put(h, f"k{i}", v, ttl=10)
        else:
            await put(h, f"k{i}", v)
            live[f"k{i}"] = v
    return live


async def check_many(h: Harness, live: dict, metric: str = "cosine", k: int = 10, n: int = 20):
    rng = np.random.default_rng(99)
    for _ in range(n):
        q = vec(rng, len(next(iter(live.values()))) if live else 8)
        reply = await h.call("vsearch", ns="docs", vector=q.tolist(), k=k)
        assert_same(reply, brute_force(live, q, metric, k))


async def test_deleted_and_overwritten_keys_are_never_returned(tmp_path: Path) -> None:
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=8)
        rng = np.random.default_rng(0)
        live = {}
        for i in range(200):
            live[f"k{i}"] = vec(rng)
            await put(h, f"k{i}", live[f"k{i}"])
        for i in range(0, 200, 2):
            await h.call("delete", ns="docs", key=f"k{i}")
            del live[f"k{i}"]
        for i in range(1, 200, 6):
            live[f"k{i}"] = vec(rng)
            await put(h, f"k{i}", live[f"k{i}"])
        await check_many(h, live)
        # Asking for more than there are gives exactly the live keys.
        reply = await h.call("vsearch", ns="docs", vector=[1.0] * 8, k=200)
        assert {item["key"] for item in reply["items"]} == set(live)
    finally:
        await h.close()


async def test_expired_entries_are_never_returned_before_or_after_the_sweep(tmp_path: Path):
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=8)
        live = await put_expiring(h, 120, lambda i: i % 3 == 0)
        h.clock.advance(11)
        # Expired, not yet swept: the store hides them and so must vsearch.
        await check_many(h, live)
        await h.commit(Sweep(10_000))
        await h.settled()
        assert h.vectors.stats()["vectors"]["namespaces"]["docs"]["vectors"] == len(live)
        await check_many(h, live)
    finally:
        await h.close()


async def test_an_index_still_full_of_expired_entries_gives_the_exact_live_answer(
    tmp_path: Path,
) -> None:
    # Stopping the indexer freezes the index as it was before the expiry, the
    # way a busy indexer leaves it for a while: most hits of some queries are
    # stale, which takes several rounds of re-searching to see past.
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=8)
        live = await put_expiring(h, 300, lambda i: i % 4 != 0)
        await h.settled()
        h.vectors.indexer.stop()
        h.clock.advance(11)
        assert h.vectors.stats()["vectors"]["namespaces"]["docs"]["vectors"] == 300
        await check_many(h, live, n=40)
        assert h.vectors.retries > 40
    finally:
        await h.close()


async def test_a_search_that_cannot_wait_for_the_index_answers_and_is_counted(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, dataclasses.replace(HNSW, fresh_wait=0.2))
    try:
        await h.call("ns_init", ns="docs", dim=8)
        rng = np.random.default_rng(4)
        live = {f"k{i}": vec(rng) for i in range(50)}
        for key, v in live.items():
            await put(h, key, v)
        await h.settled()
        h.vectors.indexer.stop()
        await h.call("delete", ns="docs", key="k0")
        await put(h, "late", vec(rng))  # the index never sees these two
        del live["k0"]
        await check_many(h, live, n=3)
        counters = h.vectors.stats()["vectors"]
        assert counters["searches_behind_index"] == 3
        assert counters["lag"] == 2
    finally:
        await h.close()


async def test_replicated_states_are_indexed_like_local_writes(tmp_path: Path) -> None:
    a = Harness(tmp_path / "a", HNSW)
    b = Harness(tmp_path / "b", HNSW)
    try:
        await a.call("ns_init", ns="docs", dim=8)
        await b.call("ns_init", ns="docs", dim=8)
        rng = np.random.default_rng(2)
        live = {}
        for i in range(60):
            live[f"k{i}"] = vec(rng)
            await put(a, f"k{i}", live[f"k{i}"])
        await a.call("delete", ns="docs", key="k5")
        del live["k5"]
        for key in [f"k{i}" for i in range(60)]:
            state = a.store.get("docs", key)
            await b.commit(Merge("docs", key, state, full=True))
        await check_many(b, live)
    finally:
        await a.close()
        await b.close()


async def test_a_key_with_concurrent_siblings_is_found_and_flagged_as_a_conflict(
    tmp_path: Path,
) -> None:
    a = Harness(tmp_path / "a", HNSW)
    b = Harness(tmp_path / "b", HNSW)
    try:
        for h in (a, b):
            await h.call("ns_init", ns="docs", dim=3, policy="mv", metric="l2")
        await a.call("put", ns="docs", key="plan", value="from a", vector=[1.0, 0.0, 0.0])
        await b.call("put", ns="docs", key="plan", value="from b", vector=[0.0, 1.0, 0.0])
        await a.call("put", ns="docs", key="calm", value="alone", vector=[0.0, 0.0, 1.0])
        await a.commit(Merge("docs", "plan", b.store.get("docs", "plan"), full=True))
        shown = await a.call("get", ns="docs", key="plan", vector=True)
        assert shown["conflict"] and len(shown["siblings"]) == 2

        found = await a.call("vsearch", ns="docs", vector=shown["vector"], k=2)
        by_key = {item["key"]: item for item in found["items"]}
        assert by_key["plan"]["value"] == shown["value"]
        assert by_key["plan"]["score"] == 0.0
        assert by_key["plan"]["conflict"] is True
        assert by_key["calm"]["conflict"] is False
        shown_in_shell = render_vsearch(found)
        assert "plan (conflict)" in shown_in_shell and "calm (conflict)" not in shown_in_shell

        # A write that has seen both siblings resolves the conflict.
        await a.call("put", ns="docs", key="plan", value="agreed", vector=[1.0, 1.0, 0.0])
        found = await a.call("vsearch", ns="docs", vector=[1.0, 1.0, 0.0], k=1)
        assert [(i["key"], i["value"], i["conflict"]) for i in found["items"]] == [
            ("plan", "agreed", False)
        ]
    finally:
        await a.close()
        await b.close()


async def test_full_shards_give_way_to_new_ones_and_compact_when_sparse(tmp_path: Path):
    h = Harness(tmp_path, SMALL_SHARDS)
    try:
        await h.call("ns_init", ns="docs", dim=8, metric="l2")
        rng = np.random.default_rng(3)
        live = {}
        for i in range(300):
            live[f"k{i}"] = vec(rng)
            await put(h, f"k{i}", live[f"k{i}"])
        await h.settled()
        shards = h.vectors.stats()["vectors"]["namespaces"]["docs"]["shards"]
        assert len(shards) >= 5
        assert all(s["slots"] <= 64 for s in shards)
        await check_many(h, live, "l2")
        # Overwrite the oldest keys: their full shards empty out and get compacted.
        for i in range(150):
            live[f"k{i}"] = vec(rng)
            await put(h, f"k{i}", live[f"k{i}"])
        await h.settled()
        await h.call("ping")
        stats = h.vectors.stats()["vectors"]
        assert stats["compactions"] >= 1
        assert stats["namespaces"]["docs"]["vectors"] == 300
        await check_many(h, live, "l2")
    finally:
        await h.close()


async def test_namespace_delete_drops_vectors_and_a_redefinition_rebuilds(tmp_path: Path):
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=8)
        rng = np.random.default_rng(4)
        for i in range(30):
            await put(h, f"old{i}", vec(rng))
        await h.call("ns_delete", ns="docs")
        await h.call("ns_init", ns="docs", dim=4, metric="ip")
        live = {}
        for i in range(30):
            live[f"new{i}"] = vec(rng, 4)
            await put(h, f"new{i}", live[f"new{i}"])
        await check_many(h, live, "ip")
        assert h.vectors.stats()["vectors"]["namespaces"]["docs"]["dim"] == 4
    finally:
        await h.close()


async def test_metric_change_rebuilds_with_the_new_metric(tmp_path: Path) -> None:
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=8, metric="cosine")
        rng = np.random.default_rng(5)
        live = {}
        for i in range(50):
            live[f"k{i}"] = vec(rng) * (i + 1)
            await put(h, f"k{i}", live[f"k{i}"])
        await h.call("ns_init", ns="docs", metric="l2")
        await check_many(h, live, "l2")
    finally:
        await h.close()


async def test_mv_namespaces_index_the_sibling_get_shows(tmp_path: Path) -> None:
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=8, policy="mv")
        rng = np.random.default_rng(6)
        live = {}
        for i in range(40):
            first, second = vec(rng), vec(rng)
            await put(h, f"k{i}", first)
            await put(h, f"k{i}", second)
            live[f"k{i}"] = second
        await check_many(h, live)
    finally:
        await h.close()


async def test_searches_racing_writes_never_see_a_removed_key(tmp_path: Path) -> None:
    config = dataclasses.replace(HNSW, search_on_loop=False, apply_batch=4, ef_search=64)
    h = Harness(tmp_path, config)
    try:
        await h.call("ns_init", ns="docs", dim=8)
        rng = np.random.default_rng(7)
        for i in range(300):
            await put(h, f"k{i}", vec(rng))
        removed: set[str] = set()

        async def writer() -> None:
            for i in range(0, 300, 3):
                await h.call("delete", ns="docs", key=f"k{i}")
                removed.add(f"k{i}")
                await put(h, f"k{i + 1}", vec(rng))
                await asyncio.sleep(0)

        async def searcher() -> None:
            for _ in range(60):
                gone = set(removed)
                reply = await h.call("vsearch", ns="docs", vector=vec(rng).tolist(), k=20)
                assert not gone & {item["key"] for item in reply["items"]}
                assert len(reply["items"]) == 20

        await asyncio.gather(writer(), searcher(), searcher())
    finally:
        await h.close()


def test_a_label_the_space_no_longer_maps_is_never_a_hit() -> None:
    """Under the read lock hnswlib and the space agree on every label; should a label the
    space has let go of still come back from hnswlib, a search leaves it out rather than
    answer with a key the space no longer holds (its row is one hit short)."""
    rng = np.random.default_rng(4)
    space = Space("docs", 8, "l2", 0, HNSW)
    vectors = {f"k{i}": vec(rng) for i in range(40)}
    space.apply([(key, Wanted(v, key.encode(), None, ())) for key, v in vectors.items()])
    gone = space.by_key.pop("k7")
    del space.by_label[gone.label]  # hnswlib still holds and returns label 7
    queries = np.stack([vectors["k7"], vectors["k7"] + 0.05])
    found, exact = space.search_many(queries, 5, None, set())
    assert not exact
    for q, hits in zip(queries, found, strict=True):
        nearest = [key for key, _ in brute_force(vectors, q, "l2", 5)]
        assert "k7" in nearest
        assert [hit.key for hit in hits] == [key for key in nearest if key != "k7"]
