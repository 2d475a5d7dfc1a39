"""Replicas converge however deltas travel, and read what the specification says.

Each example runs a random history on three replicas (writes, removes,
deletes, and deliveries of any earlier delta or any full state, in any order,
duplicated, without causal delivery), checking every replica's reads against
the model in `histories` after every step. At the end every delta is
delivered everywhere in a random order with duplicates, and the result must
equal, byte for byte, the join of all full states.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.crdt import Entry, encode_entry

from .histories import KIND_OPS, Cluster, expected_reads, histories, reads

history_settings = settings(max_examples=150, deadline=None)


def assert_same(x: Entry, y: Entry) -> None:
    assert x == y
    assert encode_entry(x) == encode_entry(y)


def run(ops: list[tuple]) -> Cluster:
    cluster = Cluster()
    for op in ops:
        cluster.run(op)
        for r in cluster.replicas:
            assert reads(r.state) == expected_reads(r.known), (op, r.node)
    return cluster


@pytest.mark.parametrize("kind", KIND_OPS)
@history_settings
@given(data=st.data())
def test_replicas_converge_however_deltas_and_states_travel(kind: str, data: st.DataObject) -> None:
    cluster = run(data.draw(histories(kind)))
    full = cluster.joined()
    assert reads(full) == expected_reads(cluster.everything_known())
    n = len(cluster.events)
    every = list(range(n))
    some = st.lists(st.integers(0, n - 1), max_size=n) if n else st.just([])

    # Every delta, in any order, some twice: the same as joining all full states.
    for r in cluster.replicas:
        state = r.state
        for i in data.draw(st.permutations(every + data.draw(some))):
            state = state.join(cluster.events[i].delta)
        assert_same(state, full)
    from_nothing = Entry()
    for i in data.draw(st.permutations(every)):
        from_nothing = from_nothing.join(cluster.events[i].delta)
    assert_same(from_nothing, full)

    # Some deltas, then the others' full states: anti-entropy repairs whatever gossip missed.
    for r in cluster.replicas:
        state = r.state
        for i in data.draw(some):
            state = state.join(cluster.events[i].delta)
        for other in data.draw(st.permutations(cluster.replicas)):
            state = state.join(other.state)
        assert_same(state, full)
