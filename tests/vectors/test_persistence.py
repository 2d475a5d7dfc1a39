"""Checkpoints: a restart loads the saved shards and applies only the changes made since."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from inprocess import InProcessNode

from swarmnode.vectors.config import VectorConfig

from .brute import assert_same, brute_force
from .harness import Clock, Harness

HNSW = dataclasses.replace(VectorConfig.local(), exact_below=0, ef_search=400, shard_max=128)
QUERIES = [np.random.default_rng(50 + i).normal(size=8).astype(np.float32) for i in range(10)]


async def answers(h: Harness, k: int = 10) -> list[list[tuple[str, float]]]:
    out = []
    for q in QUERIES:
        reply = await h.call("vsearch", ns="docs", vector=q.tolist(), k=k)
        out.append([(i["key"], i["score"]) for i in reply["items"]])
    return out


def keys(rows: list[list[tuple[str, float]]]) -> list[list[str]]:
    return [[key for key, _ in row] for row in rows]


async def filled(path: Path, n: int = 300) -> tuple[dict, list, Clock]:
    h = Harness(path, HNSW)
    await h.call("ns_init", ns="docs", dim=8)
    rng = np.random.default_rng(0)
    live = {}
    for i in range(n):
        live[f"k{i}"] = rng.normal(size=8).astype(np.float32)
        await h.call("put", ns="docs", key=f"k{i}", value=i, vector=live[f"k{i}"].tolist())
    for i in range(0, n, 10):
        await h.call("delete", ns="docs", key=f"k{i}")
        del live[f"k{i}"]
    before = await answers(h)
    await h.close()
    return live, before, h.clock


async def test_restart_gives_the_same_answers_without_rebuilding(tmp_path: Path) -> None:
    live, before, clock = await filled(tmp_path)
    h = Harness(tmp_path, HNSW, clock)
    try:
        assert await answers(h) == before
        counters = h.vectors.stats()["vectors"]
        assert counters["rebuilds"] == 0
        assert counters["applied"] == 0
        assert counters["namespaces"]["docs"]["vectors"] == len(live)
        assert len(counters["namespaces"]["docs"]["shards"]) == 3
    finally:
        await h.close()


async def test_restart_applies_only_the_changes_made_after_the_checkpoint(tmp_path: Path):
    live, _, clock = await filled(tmp_path)
    # The node writes on while its vector index is not running.
    inner = InProcessNode(tmp_path, wall_ms=clock)
    store, service = inner.store, inner.service
    rng = np.random.default_rng(7)
    for i in range(1, 40, 3):
        live[f"k{i}"] = rng.normal(size=8).astype(np.float32)
        await service.call(
            "put",
            {"ns": "docs", "key": f"k{i}", "value": i, "vector": live[f"k{i}"].tolist()},
            None,
        )
    for i in range(41, 60, 2):
        await service.call("delete", {"ns": "docs", "key": f"k{i}"}, None)
        live.pop(f"k{i}", None)
    changes = store.seq
    await inner.close()
    h = Harness(tmp_path, HNSW, clock)
    try:
        await h.settled()
        counters = h.vectors.stats()["vectors"]
        assert counters["rebuilds"] == 0
        assert 0 < counters["applied"] <= 14 + 10 < changes
        for q in QUERIES:
            reply = await h.call("vsearch", ns="docs", vector=q.tolist(), k=10)
            assert_same(reply, brute_force(live, q, "cosine", 10))
    finally:
        await h.close()


@pytest.mark.parametrize("damage", ["missing", "corrupt", "truncated"])
async def test_a_bad_shard_file_is_rebuilt_from_lmdb(tmp_path: Path, damage: str, caplog) -> None:
    live, before, clock = await filled(tmp_path)
    files = sorted((tmp_path / "vectors" / "shards" / "docs").glob("*.hnsw"))
    assert len(files) == 3
    victim = files[1]
    if damage == "missing":
        victim.unlink()
    elif damage == "corrupt":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    else:
        victim.write_bytes(victim.read_bytes()[:1000])
    caplog.set_level(logging.INFO, logger="swarmnode.vectors")
    h = Harness(tmp_path, HNSW, clock)
    try:
        for q in QUERIES:
            reply = await h.call("vsearch", ns="docs", vector=q.tolist(), k=10)
            assert_same(reply, brute_force(live, q, "cosine", 10))
        assert keys(await answers(h)) == keys(before)
        assert h.vectors.stats()["vectors"]["rebuilds"] == 1
        assert "vectors_shard_bad" in caplog.text
        assert "event=vectors_built ns=docs" in caplog.text
    finally:
        await h.close()
    again = Harness(tmp_path, HNSW, clock)
    try:
        assert keys(await answers(again)) == keys(before)
        assert again.vectors.stats()["vectors"]["rebuilds"] == 0
    finally:
        await again.close()


async def test_a_lost_vector_directory_is_rebuilt(tmp_path: Path) -> None:
    import shutil

    live, _, clock = await filled(tmp_path)
    shutil.rmtree(tmp_path / "vectors")
    h = Harness(tmp_path, HNSW, clock)
    try:
        for q in QUERIES:
            reply = await h.call("vsearch", ns="docs", vector=q.tolist(), k=10)
            assert_same(reply, brute_force(live, q, "cosine", 10))
    finally:
        await h.close()


async def test_after_a_restart_hits_read_back_from_changed_records_show_the_change(
    tmp_path: Path,
) -> None:
    """A restarted index knows no record digests; searches learn them as they read hits back.

    Whatever a search learned must not hide a later change: the index is made
    to miss a write (its listener detached, as when it lags the store), and the
    next search must still report the new vector's score, not the indexed one.
    """
    live, before, clock = await filled(tmp_path)
    h = Harness(tmp_path, HNSW, clock)
    try:
        assert await answers(h) == before
        assert await answers(h) == before
        q = QUERIES[0]
        top = (await h.call("vsearch", ns="docs", vector=q.tolist(), k=1))["items"][0]
        listeners = list(h.inner.host._listeners)
        h.inner.host._listeners.clear()
        moved = -q
        await h.call("put", ns="docs", key=top["key"], value=0, vector=moved.tolist())
        h.inner.host._listeners.extend(listeners)
        reply = await h.call("vsearch", ns="docs", vector=q.tolist(), k=10)
        scores = {item["key"]: item["score"] for item in reply["items"]}
        assert scores.get(top["key"], -1.0) < 0.0 < top["score"]
        live[top["key"]] = moved
        assert_same(
            await h.call("vsearch", ns="docs", vector=q.tolist(), k=10),
            brute_force(live, q, "cosine", 10),
        )
    finally:
        await h.close()


async def test_writes_without_vectors_advance_the_index_position(tmp_path: Path) -> None:
    """Changes of namespaces without vectors never reach the indexer's queue, yet the
    index's position follows the store past them: checkpoints (which trim the change feed)
    come due from them alone, and a restart replays none of them."""
    config = dataclasses.replace(HNSW, checkpoint_changes=50, idle_checkpoint=3600.0)
    h = Harness(tmp_path, config)
    try:
        await h.call("ns_init", ns="docs", dim=8)
        await h.call("put", ns="docs", key="v", value=0, vector=[1.0] * 8)
        await h.settled()
        first = h.vectors.indexer.checkpoint_seq
        for i in range(200):
            await h.call("put", ns="notes", key=f"n{i}", value=i)
        seq = h.store.seq
        for _ in range(1000):
            if h.vectors.applied_seq == seq and h.vectors.indexer.checkpoint_seq > first:
                break
            await asyncio.sleep(0.01)
        assert h.vectors.applied_seq == seq
        assert h.vectors.indexer.checkpoint_seq > first
        assert h.vectors.stats()["vectors"]["lag"] == 0
    finally:
        await h.close()
    h = Harness(tmp_path, config, h.clock)
    try:
        await h.settled()
        counters = h.vectors.stats()["vectors"]
        assert counters["rebuilds"] == 0
        assert counters["applied"] == 0
        assert h.vectors.indexer.applied_seq == seq
        reply = await h.call("vsearch", ns="docs", vector=[1.0] * 8, k=3)
        assert [i["key"] for i in reply["items"]] == ["v"]
    finally:
        await h.close()
