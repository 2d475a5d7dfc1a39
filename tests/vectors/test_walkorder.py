"""A batch is walked with the queries that point the same way side by side."""

from __future__ import annotations

import numpy as np

from swarmnode.vectors.walkorder import walk_order


def test_queries_near_each_other_are_walked_one_after_another() -> None:
    rng = np.random.default_rng(2)
    centre = rng.normal(size=64).astype(np.float32)
    near = centre + rng.normal(size=(20, 64)).astype(np.float32) * 0.05
    away = -centre + rng.normal(size=(20, 64)).astype(np.float32) * 0.05
    queries = np.empty((40, 64), dtype=np.float32)
    queries[0::2], queries[1::2] = near, away  # interleaved, as a client might send them
    order = walk_order(queries).tolist()
    assert sorted(order) == list(range(40))
    halves = {frozenset(i % 2 for i in order[:20]), frozenset(i % 2 for i in order[20:])}
    assert halves == {frozenset({0}), frozenset({1})}
    assert walk_order(queries).tolist() == order  # the same batch, the same walk

