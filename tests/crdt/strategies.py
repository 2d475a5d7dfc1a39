"""Hypothesis strategies for CRDT states that collide on purpose.

Random 64-bit timestamps and counters almost never meet, so a property that
holds on them proves little about ties. Everything here draws from tiny
domains instead: three node ids, timestamps 1..4, dot counters 1..6, a handful
of values that are equal in Python but differ on the wire (1, 1.0, True; 0.0
and -0.0; NaN). States generated here respect the invariants every mutator
and the decoder maintain (a held dot is in its causal context, reset floors
never exceed the totals they floor, values are canonical); the lattice laws
are claimed for those states.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from swarmnode.crdt import (
    CausalContext,
    Entry,
    LWWRegister,
    MVRegister,
    ORSet,
    PNCounter,
    Version,
)
from swarmnode.crdt.values import canonical, pack_vector

NODES = ("a", "b", "c")
MEMBERS = ("x", "y", "z")

nodes = st.sampled_from(NODES)
timestamps = st.integers(1, 4)
members = st.sampled_from(MEMBERS)
expiries = st.one_of(st.none(), st.integers(0, 4))
# Timestamps of the writes that set a counter's or set's expiry: 0 (none yet) or
# the same few instants as everything else, so equal stamps are common.
expiry_stamps = st.one_of(st.just(0), timestamps)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 2),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, math.nan, math.inf]),
    st.text("xy", max_size=2),
    st.binary(max_size=2),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from("kj"), inner, max_size=2)
    ),
    max_leaves=4,
).map(canonical)
metas = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from("kj"), scalars, min_size=1, max_size=2).map(canonical),
)
vectors = st.sampled_from([None, pack_vector([1.0]), pack_vector([0.5, -2.0])])
# The writing agent (audit): absent, or one of two, so ties on a timestamp meet often.
agents = st.sampled_from([None, "ann", "bob"])

lww_registers = st.builds(
    LWWRegister,
    timestamps,
    nodes,
    values,
    metas,
    vectors,
    deleted=st.booleans(),
    expires_at=expiries,
)

# Few distinct versions, so the same dot often carries the same version in two
# states (the normal case) and sometimes a different one (a reused dot).
mv_versions = st.builds(
    Version,
    st.sampled_from([0, 1, 1.0, True, "v", math.nan]),
    timestamps,
    st.sampled_from([None, {"k": 1}]),
    st.sampled_from([None, pack_vector([1.0])]),
    st.sampled_from([None, 3]),
    agents,
)


@st.composite
def causal_contexts(draw: st.DrawFn) -> CausalContext:
    vv = draw(st.dictionaries(nodes, st.integers(1, 3), max_size=3))
    cloud = draw(st.sets(st.tuples(nodes, st.integers(1, 6)), max_size=4))
    return CausalContext(vv, cloud)


@st.composite
def mv_registers(draw: st.DrawFn) -> MVRegister:
    cc = draw(causal_contexts())
    seen = sorted(cc.dots())
    picks = draw(st.lists(st.tuples(st.integers(0, 15), mv_versions), max_size=3))
    return MVRegister({seen[i % len(seen)]: v for i, v in picks} if seen else {}, cc)


@st.composite
def pn_counters(draw: st.DrawFn) -> PNCounter:
    totals = st.dictionaries(nodes, st.integers(0, 4), max_size=3)
    p, n, fp, fn = draw(totals), draw(totals), draw(totals), draw(totals)
    # Floors never exceed the totals they floor: a reset carries what it observed.
    return PNCounter(
        p,
        n,
        {k: min(v, p[k]) for k, v in fp.items() if k in p},
        {k: min(v, n[k]) for k, v in fn.items() if k in n},
        draw(expiries),
        draw(expiry_stamps),
    )


def member_of(dot: tuple[str, int]) -> str:
    """The member a dot was added for: one fixed member per dot in every generated state.

    A dot names one add of one member, so two states must never disagree on it.
    """
    node, n = dot
    return MEMBERS[(NODES.index(node) + n) % len(MEMBERS)]


@st.composite
def orsets(draw: st.DrawFn) -> ORSet:
    cc = draw(causal_contexts())
    seen = sorted(cc.dots())
    held = draw(st.sets(st.integers(0, 15), max_size=4)) if seen else set()
    elems: dict[str, set[tuple[str, int]]] = {}
    for i in held:
        dot = seen[i % len(seen)]
        elems.setdefault(member_of(dot), set()).add(dot)
    return ORSet(
        {m: frozenset(d) for m, d in elems.items()}, cc, draw(expiries), draw(expiry_stamps)
    )


def _stamped(e: Entry) -> Entry:
    # An entry's ts is a max-register over the writes it holds (the decoder insists).
    inner = [e.reg.ts] if e.reg else []
    inner += [v.ts for v in e.mv.versions.values()] if e.mv else []
    inner += [e.counter.expiry_ts] if e.counter else []
    inner += [e.orset.expiry_ts] if e.orset else []
    e.ts = max([e.ts, *inner])
    return e


entries = st.builds(
    Entry,
    timestamps,
    reg=st.none() | lww_registers,
    mv=st.none() | mv_registers(),
    counter=st.none() | pn_counters(),
    orset=st.none() | orsets(),
    agent=agents,
).map(_stamped)


def as_entry(state: Any) -> Entry:
    """Wrap any CRDT part in an Entry, the unit the codec encodes."""
    if isinstance(state, Entry):
        return state
    if isinstance(state, LWWRegister):
        return Entry(reg=state)
    if isinstance(state, MVRegister):
        return Entry(mv=state)
    if isinstance(state, PNCounter):
        return Entry(counter=state)
    if isinstance(state, ORSet):
        return Entry(orset=state)
    if isinstance(state, CausalContext):
        return Entry(mv=MVRegister({}, state))
    raise TypeError(type(state))
