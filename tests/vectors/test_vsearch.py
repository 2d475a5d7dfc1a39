"""vsearch answers what numpy brute force answers over the live entries, filters included."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from swarmnode.errors import BadRequest
from swarmnode.vectors.config import VectorConfig

from .brute import assert_same, brute_force
from .harness import Harness

EXACT = dataclasses.replace(VectorConfig.local(), exact_below=10_000)
# exact_below=0 sends every query through hnswlib; ef above the data size
# makes HNSW on small data visit every vector, so its answer is exact too.
HNSW = dataclasses.replace(VectorConfig.local(), exact_below=0, ef_search=400)


async def fill(h: Harness, metric: str, n: int = 300, dim: int = 16, seed: int = 0) -> dict:
    await h.call("ns_init", ns="docs", dim=dim, metric=metric)
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(n):
        v = rng.normal(size=dim).astype(np.float32)
        data[f"k{i:03d}"] = v
        meta = {"topic": ["a", "b", "c"][i % 3], "tags": [f"t{i % 5}", f"u{i % 7}"], "n": i % 4}
        await h.call(
            "put", ns="docs", key=f"k{i:03d}", value={"i": i}, vector=v.tolist(), meta=meta
        )
    return data


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
@pytest.mark.parametrize("config", [EXACT, HNSW], ids=["exact", "hnsw"])
async def test_results_match_numpy_brute_force(tmp_path: Path, metric: str, config) -> None:
    h = Harness(tmp_path, config)
    try:
        data = await fill(h, metric)
        rng = np.random.default_rng(1)
        for _ in range(15):
            q = rng.normal(size=16).astype(np.float32)
            reply = await h.call("vsearch", ns="docs", vector=q.tolist(), k=10)
            assert reply["exact"] is (config is EXACT)
            assert reply["better"] == ("lower" if metric == "l2" else "higher")
            assert_same(reply, brute_force(data, q, metric, 10))
        hit = reply["items"][0]
        assert hit["value"] == {"i": int(hit["key"][1:])}
        assert hit["meta"]["topic"] in ("a", "b", "c")
    finally:
        await h.close()


@pytest.mark.parametrize("config", [EXACT, HNSW], ids=["exact", "hnsw"])
async def test_filters_match_by_equality_and_membership(tmp_path: Path, config) -> None:
    h = Harness(tmp_path, config)
    try:
        data = await fill(h, "cosine")
        rng = np.random.default_rng(2)

        def index(key: str) -> int:
            return int(key[1:])

        cases = [
            ({"topic": "a"}, lambda i: i % 3 == 0),
            ({"tags": "t1"}, lambda i: i % 5 == 1),
            ({"tags": {"$in": ["t1", "u2"]}}, lambda i: i % 5 == 1 or i % 7 == 2),
            ({"topic": {"$in": ["a", "c"]}, "n": 1}, lambda i: i % 3 != 1 and i % 4 == 1),
            (
                {"topic": {"$eq": "b"}, "tags": {"$in": ["t0", "t4"]}},
                lambda i: i % 3 == 1 and i % 5 in (0, 4),
            ),
            ({"topic": "zzz"}, lambda i: False),
            ({"n": True}, lambda i: False),
        ]
        for flt, keep in cases:
            q = rng.normal(size=16).astype(np.float32)
            reply = await h.call("vsearch", ns="docs", vector=q.tolist(), k=7, filter=flt)
            allowed = {k: v for k, v in data.items() if keep(index(k))}
            assert_same(reply, brute_force(allowed, q, "cosine", 7))
    finally:
        await h.close()


async def test_a_selective_filter_is_searched_exactly(tmp_path: Path) -> None:
    config = dataclasses.replace(VectorConfig.local(), exact_below=50)
    h = Harness(tmp_path, config)
    try:
        data = await fill(h, "l2")
        q = np.ones(16, dtype=np.float32)
        broad = await h.call("vsearch", ns="docs", vector=q.tolist(), k=5)
        narrow = await h.call("vsearch", ns="docs", vector=q.tolist(), k=5, filter={"tags": "u3"})
        assert broad["exact"] is False
        assert narrow["exact"] is True
        allowed = {k: v for k, v in data.items() if int(k[1:]) % 7 == 3}
        assert_same(narrow, brute_force(allowed, q, "l2", 5))
    finally:
        await h.close()


async def test_bad_queries_are_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        await fill(h, "cosine", n=5, dim=4)
        await h.call("ns_init", ns="plain")
        bad = [
            ({"vector": [1.0, 2.0, 3.0]}, "3 dimensions"),
            ({"vector": [1.0, float("nan"), 0.0, 0.0]}, "NaN"),
            ({"vector": [1.0, float("inf"), 0.0, 0.0]}, "NaN or infinite"),
            ({"vector": []}, "empty"),
            ({}, "exactly one"),
            ({"vector": [1.0] * 4, "text": "x"}, "exactly one"),
            ({"text": "hello"}, "no embedder"),
            ({"vector": [1.0] * 4, "filter": {"topic": {"$gt": 1}}}, "operators"),
            ({"vector": [1.0] * 4, "filter": {"topic": [1, 2]}}, "must compare"),
            ({"vector": [1.0] * 4, "filter": ["topic"]}, "map"),
            ({"vector": [1.0] * 4, "k": 0}, "between"),
            ({"vector": [1.0] * 4, "bogus": 1}, "unknown argument"),
            ({"vector": [1.0] * 4, "embedder": "all-MiniLM-L6-v2"}, "names no embedder"),
        ]
        for args, message in bad:
            with pytest.raises(BadRequest, match=message):
                await h.call("vsearch", ns="docs", **args)
        with pytest.raises(BadRequest, match="no vector dimension"):
            await h.call("vsearch", ns="plain", vector=[1.0])
    finally:
        await h.close()


async def test_puts_of_wrong_dimension_or_nan_are_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        await h.call("ns_init", ns="docs", dim=4)
        with pytest.raises(BadRequest, match="expects 4"):
            await h.call("put", ns="docs", key="a", value=1, vector=[1.0, 2.0])
        with pytest.raises(BadRequest, match="NaN"):
            await h.call("put", ns="docs", key="a", value=1, vector=[1.0, float("nan"), 0, 0])
        reply = await h.call("vsearch", ns="docs", vector=[1.0, 0, 0, 0])
        assert reply["items"] == []
    finally:
        await h.close()


async def test_search_by_key_uses_the_entry_vector(tmp_path: Path) -> None:
    h = Harness(tmp_path, EXACT)
    try:
        data = await fill(h, "cosine", n=40)
        reply = await h.call("vsearch", ns="docs", key="k007", k=4)
        assert_same(reply, brute_force(data, data["k007"], "cosine", 4))
        assert h.vectors.cache.stats()["hits"] >= 1
    finally:
        await h.close()
