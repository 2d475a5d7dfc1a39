"""An operation's bound arguments checker (`args.checker`) answers exactly what
`check_args` answers: the same checked map, or the same error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.errors import SwarmError
from swarmnode.service.args import check_args, checker
from swarmnode.service.table import TABLE, OpSpec
from swarmnode.storage.catalog import Catalog
from swarmnode.storage.namespaces import NamespaceDef

CATALOG = Catalog.of({"defined": NamespaceDef("defined")}, {"counted": [3, 2, 100]}, 1)
VALUES = [
    None, True, False, 0, 1, -1, 7, 2**70, 1.5, -0.5, 1e12, float("nan"), float("inf"),
    "", "default", "defined", "counted", "nobody-made-this", "bad name!", "x" * 300, "5m",
    "none", "all", "cosine", [], ["a", "b"], [1.0, 2.0], [[1.0, 2.0]], (1.0,), {}, {"a": 1},
    b"\x00\x00\x80?",
]  # fmt: skip
LIKELY: dict[str, list[Any]] = {
    "ns": ["defined", "counted", "default", "nobody-made-this", "bad name!", 3],
    "key": ["k", "", "x" * 300, 1],
    "str": ["s", "", "x" * 3000, 1],
    "enum": ["cosine", "all", "nope"],
    "bool": [True, False, 0, 1, None],
    "int": [0, 1, 7, -1, 2**70, True, 1.0],
    "number": [0, 1.5, -0.5, 7, float("nan"), float("inf"), False],
    "ttl": [0, 60, 1.5, "5m", -1, 10**12, float("nan"), True],
    "map": [{}, {"a": 1}, [], None],
    "value": [None, 1, "v", {"a": 1}, [1], b"b"],
    "members": ["m", ["a", "b"], [], 3],
    "vector": [[1.0, 2.0], b"\x00\x00\x80?", (1.0,), "v"],
}
"""Values of each argument kind, valid and not, drawn most of the time."""
SPECS = sorted(TABLE.values(), key=lambda s: s.name)


def outcome(check: Any, spec: OpSpec, args: Any) -> tuple[str, Any]:
    try:
        out = check(spec, args)
    except SwarmError as exc:
        return "error", (type(exc).__name__, str(exc))
    # Types too: a ttl is a float whether it came as 5 or 5.0.
    return "ok", sorted((k, type(v).__name__, repr(v)) for k, v in out.items())


@st.composite
def requests(draw: st.DrawFn) -> tuple[OpSpec, Any]:
    spec = draw(st.sampled_from(SPECS))
    names = [a.name for a in spec.args] + ["unknown_arg"]
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    kinds = {a.name: a.kind for a in spec.args}
    args = {
        name: draw(st.sampled_from(LIKELY.get(kinds.get(name, ""), VALUES) or VALUES))
        if draw(st.booleans()) or draw(st.booleans())
        else draw(st.sampled_from(VALUES))
        for name in chosen
    }
    if draw(st.integers(0, 30)) == 0:
        return spec, draw(st.sampled_from([None, [], "args", 3]))
    return spec, args


def visible(ns: str) -> bool:
    return ns != "counted"


@settings(max_examples=2000, deadline=None)
@given(requests())
def test_the_bound_checker_answers_as_check_args(request: tuple[OpSpec, Any]) -> None:
    spec, args = request
    bound = checker(spec)
    quick = outcome(lambda s, a: bound(a, CATALOG, visible), spec, args)
    full = outcome(lambda s, a: check_args(s, a, CATALOG, visible), spec, args)
    assert quick == full


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_plausible_request_of_every_operation_is_answered_as_check_args(spec: OpSpec) -> None:
    """Every argument given a valid value of its kind."""
    plausible = {
        "ns": "defined", "key": "k", "value": {"a": 1}, "bool": False, "map": {"a": 1},
        "int": 7, "number": 1.5, "ttl": 60, "str": "s", "members": ["m"], "vector": [1.0],
    }  # fmt: skip
    args = {a.name: plausible[a.kind] for a in spec.args if a.kind in plausible}
    quick = outcome(lambda s, a: checker(s)(a, CATALOG, visible), spec, args)
    full = outcome(lambda s, a: check_args(s, a, CATALOG, visible), spec, args)
    assert quick == full
