"""Every CRDT join is a semilattice join, on colliding states.

Equality alone is not enough: anti-entropy compares hashes of encoded states,
so two results that compare equal must also encode to identical bytes. Each
law is therefore checked both ways.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import encode_entry

from .strategies import (
    as_entry,
    causal_contexts,
    entries,
    lww_registers,
    mv_registers,
    orsets,
    pn_counters,
)

KINDS = {
    "lww": lww_registers,
    "mv": mv_registers(),
    "counter": pn_counters(),
    "orset": orsets(),
    "causal_context": causal_contexts(),
    "entry": entries,
}


def assert_same(x: Any, y: Any) -> None:
    assert x == y
    assert hash(x) == hash(y)
    assert encode_entry(as_entry(x)) == encode_entry(as_entry(y))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_join_is_commutative_associative_and_idempotent(kind: str, data: st.DataObject) -> None:
    a, b, c = (data.draw(KINDS[kind]) for _ in range(3))
    ab = a.join(b)
    assert_same(ab, b.join(a))
    assert_same(ab.join(c), a.join(b.join(c)))
    assert_same(a.join(a), a)
    assert_same(ab.join(a), ab)
    assert_same(ab.join(b), ab)
