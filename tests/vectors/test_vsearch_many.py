"""vsearch_many answers, query by query, exactly what vsearch answers; bad batches are refused
whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from swarmnode.client.shaping import plain_vectors
from swarmnode.errors import BadRequest, Unavailable
from swarmnode.service.table import MAX_BATCH
from swarmnode.storage.ops import Merge

from .brute import assert_same, brute_force
from .harness import Harness
from .test_index_truth import SMALL_SHARDS, put_expiring
from .test_vsearch import EXACT, HNSW, fill


async def singles(h: Harness, queries: np.ndarray, **args) -> list[dict]:
    """Each query's items from a vsearch of its own."""
    return [
        (await h.call("vsearch", ns="docs", vector=q.tolist(), **args))["items"] for q in queries
    ]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("config", [EXACT, HNSW], ids=["exact", "hnsw"])
async def test_each_result_is_what_vsearch_gives_for_its_query(
    tmp_path: Path, metric: str, config
) -> None:
    h = Harness(tmp_path, config)
    try:
        data = await fill(h, metric)
        queries = np.random.default_rng(5).normal(size=(12, 16)).astype(np.float32)
        for args in ({"k": 7}, {"k": 5, "filter": {"topic": "b"}}, {"k": 4, "ef": 500}):
            batch = await h.call("vsearch_many", ns="docs", vectors=queries.tolist(), **args)
            assert batch["exact"] is (config is EXACT)
            assert batch["better"] == ("lower" if metric == "l2" else "higher")
            assert [r["items"] for r in batch["results"]] == await singles(h, queries, **args)
        # Lists of numbers and float32 bytes may be mixed; the answer is the same.
        mixed = [q.tolist() if i % 2 else q.astype("<f4").tobytes() for i, q in enumerate(queries)]
        batch = await h.call("vsearch_many", ns="docs", vectors=mixed, k=10)
        for q, result in zip(queries, batch["results"], strict=True):
            assert_same(result, brute_force(data, q, metric, 10))
    finally:
        await h.close()


async def test_expired_keys_never_come_back_while_the_index_still_holds_them(
    tmp_path: Path,
) -> None:
    # The indexer is stopped before the expiry: most first-round hits of the batch are
    # stale, and each query is searched again until a round comes back clean.
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=8)
        live = await put_expiring(h, 300, lambda i: i % 4 != 0)
        await h.settled()
        h.vectors.indexer.stop()
        h.clock.advance(11)
        await h.call("delete", ns="docs", key=sorted(live)[0])
        del live[sorted(live)[0]]
        queries = np.random.default_rng(8).normal(size=(30, 8)).astype(np.float32)
        batch = await h.call("vsearch_many", ns="docs", vectors=queries.tolist(), k=10)
        for q, result in zip(queries, batch["results"], strict=True):
            assert_same(result, brute_force(live, q, "cosine", 10))
        assert h.vectors.retries >= 30
    finally:
        await h.close()


async def test_a_key_with_siblings_is_flagged_as_vsearch_flags_it(tmp_path: Path) -> None:
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
        batch = await a.call(
            "vsearch_many", ns="docs", vectors=[shown["vector"], [0.0, 0.0, 1.0]], k=2
        )
        first, second = ([(i["key"], i["conflict"]) for i in r["items"]] for r in batch["results"])
        assert first == [("plan", True), ("calm", False)]
        assert second == [("calm", False), ("plan", True)]
    finally:
        await a.close()
        await b.close()


async def test_bad_batches_are_refused_whole(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        await fill(h, "cosine", n=5, dim=4)
        await h.call("ns_init", ns="plain")
        good = [1.0, 0.0, 0.0, 0.0]
        bad = [
            ({"vectors": []}, "between 1 and 1024 vectors, not 0"),
            ({"vectors": [good] * (MAX_BATCH + 1)}, "between 1 and 1024 vectors, not 1025"),
            ({"vectors": good}, r"'vectors'\[0\] must be a list of numbers or float32 bytes"),
            ({"vectors": "abc"}, "must be a list of vectors"),
            ({"vectors": [good, [1.0, 2.0, 3.0], good]}, r"vectors\[1\] has 3 dimensions"),
            ({"vectors": [good, b"\0" * 12]}, r"vectors\[1\] has 3 dimensions"),
            ({"vectors": [good, good, [1.0, float("nan"), 0, 0]]}, r"vectors\[2\] must not"),
            ({"vectors": [good, []]}, r"vectors\[1\] must be a non-empty"),
            ({"vectors": [good, b"\0" * 5]}, r"vectors\[1\] must be a list of numbers"),
            ({"vectors": [good, ["a", 1, 2, 3]]}, r"vectors\[1\] must be a list of numbers"),
            ({"vectors": [good], "k": 0}, "between"),
            ({"vectors": [good], "embedder": "all-MiniLM-L6-v2"}, "names no embedder"),
            ({"vectors": [good], "filter": {"topic": {"$gt": 1}}}, "operators"),
            ({"vectors": [good], "text": "x"}, "unknown argument"),
        ]
        for args, message in bad:
            with pytest.raises(BadRequest, match=message):
                await h.call("vsearch_many", ns="docs", **args)
        with pytest.raises(BadRequest, match="no vector dimension"):
            await h.call("vsearch_many", ns="plain", vectors=[[1.0]])
        # The largest batch is answered in full.
        full = await h.call("vsearch_many", ns="docs", vectors=[good] * MAX_BATCH, k=2)
        assert len(full["results"]) == MAX_BATCH
    finally:
        await h.close()


async def test_a_namespace_being_rebuilt_is_unavailable(tmp_path: Path) -> None:
    # The indexer marks a space `building` while it rebuilds it from the store; the
    # marking is set here directly, since a real rebuild of a few vectors is over before a
    # request could meet it.
    h = Harness(tmp_path)
    try:
        await fill(h, "cosine", n=5, dim=4)
        await h.settled()
        before = await h.call("vsearch_many", ns="docs", vectors=[[1.0, 0, 0, 0]] * 3, k=2)
        assert [len(r["items"]) for r in before["results"]] == [2, 2, 2]
        h.vectors.indexer.spaces["docs"].building = (1, 5)
        with pytest.raises(Unavailable, match="being rebuilt"):
            await h.call("vsearch_many", ns="docs", vectors=[[1.0, 0, 0, 0]], k=2)
    finally:
        await h.close()


def test_clients_send_a_query_array_row_by_row_and_refuse_what_is_not_one() -> None:
    matrix = np.arange(6, dtype=np.float64).reshape(2, 3)
    rows = plain_vectors(matrix)
    assert rows == [np.array(r, dtype="<f4").tobytes() for r in matrix.tolist()]
    assert plain_vectors([[0.0, 1.0, 2.0], rows[1]]) == rows
    for bad, message in ((np.zeros(3), "2-D"), ("abc", "list of vectors"), ([["x"]], "numbers")):
        with pytest.raises(BadRequest, match=message):
            plain_vectors(bad)


@pytest.mark.parametrize("config", [HNSW, SMALL_SHARDS], ids=["one-shard", "shards"])
async def test_a_batch_after_removals_and_under_a_filter_answers_as_single_searches(
    tmp_path: Path, config
) -> None:
    # Removed keys are marked deleted in their shards (the indexer has applied the
    # removals): neither the batch nor a single search may return one.
    h = Harness(tmp_path, config)
    try:
        data = await fill(h, "cosine")
        removed = sorted(data)[::3]
        for key in removed:
            await h.call("delete", ns="docs", key=key)
        await h.settled()
        queries = np.random.default_rng(11).normal(size=(20, 16)).astype(np.float32)
        topic_b = {key: data[key] for key in data if key not in removed and int(key[1:]) % 3 == 1}
        for args, live in (
            ({"k": 10}, {key: v for key, v in data.items() if key not in removed}),
            ({"k": 6, "filter": {"topic": "b"}}, topic_b),
        ):
            batch = await h.call("vsearch_many", ns="docs", vectors=queries.tolist(), **args)
            results = [r["items"] for r in batch["results"]]
            assert results == await singles(h, queries, **args)
            for q, result in zip(queries, batch["results"], strict=True):
                assert not {item["key"] for item in result["items"]} & set(removed)
                assert_same(result, brute_force(live, q, "cosine", args["k"]))
    finally:
        await h.close()


async def test_keys_at_equal_distance_come_in_key_order(tmp_path: Path) -> None:
    # The same vector under keys put in descending order: their labels ascend while their
    # keys descend, and hnswlib orders equal distances as it happens to find them.
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=4, metric="l2")
        rng = np.random.default_rng(3)
        twin = [1.0, 2.0, 3.0, 4.0]
        for i in reversed(range(6)):
            await h.call("put", ns="docs", key=f"same{i:02d}", value=i, vector=twin)
            far = (rng.normal(size=4) * 10 + 40).tolist()
            await h.call("put", ns="docs", key=f"far{i:02d}", value=i, vector=far)
        await h.settled()
        queries = [twin, [1.0, 2.0, 3.0, 5.0], [0.5, 2.0, 3.0, 4.0]]
        batch = await h.call("vsearch_many", ns="docs", vectors=queries, k=8)
        want = [f"same{i:02d}" for i in range(6)]
        for q, result in zip(queries, batch["results"], strict=True):
            assert [item["key"] for item in result["items"]][:6] == want
            single = await h.call("vsearch", ns="docs", vector=q, k=8)
            assert single["items"] == result["items"]
    finally:
        await h.close()
