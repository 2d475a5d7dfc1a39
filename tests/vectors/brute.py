"""Numpy brute force: the answer every vector search is checked against."""

from __future__ import annotations

from typing import Any

import numpy as np


def brute_force(
    vectors: dict[str, np.ndarray], query: np.ndarray, metric: str, k: int
) -> list[tuple[str, float]]:
    """The k best (key, score), best first; scores as vsearch reports them."""
    if not vectors:
        return []
    keys = sorted(vectors)
    m = np.array([vectors[key] for key in keys], dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if metric == "l2":
        score = np.linalg.norm(m - q, axis=1)
        rank = score
    elif metric == "cosine":
        score = (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))
        rank = -score
    else:
        score = m @ q
        rank = -score
    order = sorted(range(len(keys)), key=lambda i: (rank[i], keys[i]))[:k]
    return [(keys[i], float(score[i])) for i in order]


def keys_and_scores(reply: dict[str, Any]) -> list[tuple[str, float]]:
    return [(item["key"], item["score"]) for item in reply["items"]]


def assert_same(reply: dict[str, Any], expected: list[tuple[str, float]]) -> None:
    got = keys_and_scores(reply)
    assert [k for k, _ in got] == [k for k, _ in expected], (
        f"vsearch gave {got}\nbrute force {expected}"
    )
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-4, atol=1e-5)
