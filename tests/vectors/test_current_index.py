"""A caught-up index answers from its cached records, and still never with an old one.

When the index holds every change a search's read sees, hits take their
entries from the cache by the record digest the index was built from,
without reading the store: these tests change keys in every way that keeps
their vector (so the index keeps the label and only learns a new record),
and check that the next search shows exactly the store's state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from swarmnode.vectors.filters import posting_keys
from swarmnode.vectors.space import Hit, Space, Wanted

from .brute import assert_same, brute_force
from .harness import Harness
from .test_index_truth import HNSW, vec


async def search(h: Harness, q: np.ndarray, k: int = 10, **kw) -> dict:
    return await h.call("vsearch", ns="docs", vector=q.tolist(), k=k, **kw)


async def test_changes_that_keep_the_vector_show_in_the_next_search(tmp_path: Path) -> None:
    h = Harness(tmp_path, HNSW)
    try:
        await h.call("ns_init", ns="docs", dim=8)
        rng = np.random.default_rng(3)
        live = {f"k{i}": vec(rng) for i in range(60)}
        for key, v in live.items():
            await h.call("put", ns="docs", key=key, value=key, vector=v.tolist(), meta={"t": "a"})
        q = vec(rng)
        first = await search(h, q)
        assert_same(first, brute_force(live, q, "cosine", 10))
        top, second = first["items"][0]["key"], first["items"][1]["key"]

        # A new value: the same label, a new record.
        await h.call("put", ns="docs", key=top, value="new", vector=live[top].tolist())
        items = (await search(h, q))["items"]
        assert items[0]["key"] == top and items[0]["value"] == "new"

        # New metadata that no longer passes the filter.
        v = live[second].tolist()
        await h.call("put", ns="docs", key=second, value=second, vector=v, meta={"t": "b"})
        filtered = await search(h, q, filter={"t": "a"})
        assert second not in {item["key"] for item in filtered["items"]}

        # An expiry: once it has passed, the key is gone before the indexer sweeps it.
        await h.call("put", ns="docs", key=top, value="new", vector=live[top].tolist(), ttl=10)
        assert (await search(h, q))["items"][0]["key"] == top
        h.clock.advance(11)
        del live[top]
        assert_same(await search(h, q), brute_force(live, q, "cosine", 10))
        many = await h.call("vsearch_many", ns="docs", vectors=[q.tolist()], k=10)
        assert top not in {item["key"] for item in many["results"][0]["items"]}
    finally:
        await h.close()


def test_a_digest_noted_from_an_older_snapshot_never_replaces_a_newer_one() -> None:
    """A search reading a hit back in an old snapshot may finish after the indexer applied a
    newer record with the same vector: its note must not take the index back to the old
    record, which a search of a caught-up index would then answer from."""
    space = Space("docs", 4, "cosine", 0, HNSW)
    vector = np.ones(4, dtype=np.float32)
    postings = posting_keys({"t": "a"})
    space.apply([("k", Wanted(vector, b"d" * 8, None, postings, b"new", 7))])
    item = space.by_key["k"]
    hit = Hit(item.label, "k", item.digest, 0.0, None)

    space.note_stored(hit, b"old", 5, postings)
    assert (item.stored, item.stored_seq) == (b"new", 7)
    space.note_stored(hit, b"other-meta", 9, posting_keys({"t": "b"}))
    assert (item.stored, item.stored_seq) == (b"new", 7)
    space.note_stored(Hit(item.label, "k", b"e" * 8, 0.0, None), b"other-vector", 9, postings)
    assert (item.stored, item.stored_seq) == (b"new", 7)
    space.note_stored(hit, b"newer", 9, postings)
    assert (item.stored, item.stored_seq) == (b"newer", 9)
