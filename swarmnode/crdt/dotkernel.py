"""The join rule shared by every dot-based type (MV-register, OR-set).

A dot survives a join if both sides hold it, or if one side holds it and the
other side has never seen it. A dot one side has seen but no longer holds was
removed there, and the removal wins over the stale copy. This is the whole
trick that lets removals travel as causal contexts instead of per-element
tombstones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from swarmnode.crdt.causal import CausalContext, Dot

V = TypeVar("V")


def join_dot_map(
    a: Mapping[Dot, V],
    a_cc: CausalContext,
    b: Mapping[Dot, V],
    b_cc: CausalContext,
    pick: Callable[[V, V], V],
) -> dict[Dot, V]:
    """Join two dot stores; `pick` chooses between two values held under the same dot.

    A dot names one event, so both sides normally hold the same value under it.
    They differ only when a dot was reused (a node that lost its data, or a key
    written again after its tombstone was collected); `pick` must then choose
    the same value whichever side it is called from, or replicas diverge.
    """
    out: dict[Dot, V] = {}
    for dot, value in a.items():
        if dot in b:
            out[dot] = pick(value, b[dot])
        elif dot not in b_cc:
            out[dot] = value
    for dot, value in b.items():
        if dot not in a and dot not in a_cc:
            out[dot] = value
    return out


def join_dot_set(
    a: Iterable[Dot], a_cc: CausalContext, b: Iterable[Dot], b_cc: CausalContext
) -> set[Dot]:
    a_set = a if isinstance(a, (set, frozenset)) else set(a)
    b_set = b if isinstance(b, (set, frozenset)) else set(b)
    out = {d for d in a_set if d in b_set or d not in b_cc}
    out.update(d for d in b_set if d not in a_set and d not in a_cc)
    return out
