"""Judging one read as its answer arrives (the simulator's online read oracles).

A `vsearch` returns at most k distinct vector keys, best first, each with a
value some vector put wrote, and a score that is the cosine similarity of the
query and the vector written with that value: value and score come from one
version.
"""

from __future__ import annotations

import math
from typing import Any


def check_vsearch(op: Any, vectors_by_value: dict[int, tuple[float, ...]]) -> list[str]:
    items = op.result
    where = f"op {op.id} vsearch on n{op.node}"
    if len(items) > op.arg or len({key for key, _, _ in items}) != len(items):
        return [f"{where}: {len(items)} items for k={op.arg}, or a key twice: {items}"]
    scores = [score for _, _, score in items]
    if scores != sorted(scores, reverse=True):
        return [f"{where}: hits not best first: {items}"]
    for key, value, score in items:
        vector = vectors_by_value.get(value)
        if vector is None:
            return [f"{where}: hit {key} with value {value!r}, which no vector put wrote"]
        expected = _cosine(op.vector, vector)
        if abs(expected - score) > 1e-3:
            return [f"{where}: hit {key} scored {score}, its value's vector gives {expected:.6f}"]
    return []


def _cosine(a: tuple[float, ...] | None, b: tuple[float, ...]) -> float:
    assert a is not None
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
