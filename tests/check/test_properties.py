"""Laws of the checker over generated histories.

- A history recorded from a real register, however the invoke/complete
  windows overlap and whatever ends unknown or failed, is linearizable.
- The same history with one completed read's result replaced by a value
  nobody wrote is not.
- On small arbitrary histories the search agrees with brute force, and a
  shrunk counterexample still fails and never invents operations.
"""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmnode.check import UNKNOWN, Operation, check_history
from swarmnode.check.generate import register_events
from swarmnode.check.jsonl import freeze

from .histories import REGISTER, brute_force, jsonl_ops

runs = settings(max_examples=150, deadline=None)


def recorded(seed: int, operations: int, keys: int, processes: int) -> list[dict[str, Any]]:
    return register_events(
        random.Random(seed),
        operations=operations,
        keys=keys,
        processes=processes,
        fail_rate=0.1,
        info_rate=0.1,
    )


histories = st.builds(
    recorded,
    seed=st.integers(0, 2**32),
    operations=st.integers(1, 60),
    keys=st.integers(1, 3),
    processes=st.integers(1, 6),
)


@runs
@given(histories)
def test_a_history_recorded_from_a_real_register_is_linearizable(
    events: list[dict[str, Any]],
) -> None:
    result = check_history(jsonl_ops(events), REGISTER)
    assert result.linearizable is True


@runs
@given(histories, st.data())
def test_one_read_of_a_value_never_written_makes_it_not_linearizable(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    reads = [e for e in events if e["f"] == "read" and e["type"] == "ok"]
    if not reads:
        return
    corrupted = data.draw(st.sampled_from(reads))
    corrupted["value"] = "never written"
    result = check_history(jsonl_ops(events), REGISTER, explain=True)
    assert result.linearizable is False
    cx = result.counterexample
    assert cx is not None and cx.culprit is not None
    # Everything before that read completed came from a real register, so the
    # shortest failing prefix ends exactly at the corrupted read.
    assert cx.culprit.output == freeze("never written")
    assert cx.culprit.ret == corrupted["index"]


def as_operation(i: int, spec: tuple[str, str, Any, Any, int, int | None]) -> Operation:
    f, key, arg, output, call, length = spec
    ret = None if length is None else call + length
    return Operation(
        id=i,
        process=i,
        f=f,
        key=key,
        input=(f, arg),
        output=UNKNOWN if ret is None else output,
        call=call,
        ret=math.inf if ret is None else ret,
        call_line=call,
        ret_line=ret,
    )


values = st.sampled_from((None, 0, 1, 2))
window = (st.integers(0, 10), st.one_of(st.none(), st.integers(0, 6)))
keys = st.sampled_from(("a", "b"))
specs = st.one_of(
    st.tuples(st.just("read"), keys, st.none(), values, *window),
    st.tuples(st.just("write"), keys, st.integers(0, 2), st.none(), *window),
    st.tuples(st.just("cas"), keys, st.tuples(values, values), st.booleans(), *window),
)
arbitrary_histories = st.lists(specs, min_size=1, max_size=6).map(
    lambda specs: [as_operation(i, spec) for i, spec in enumerate(specs)]
)


@settings(max_examples=600, deadline=None)
@given(arbitrary_histories)
def test_the_search_agrees_with_brute_force(ops: list[Operation]) -> None:
    expected = brute_force(ops)
    result = check_history(ops, REGISTER, explain=True)
    assert result.linearizable is expected
    if not expected:
        cx = result.counterexample
        assert cx is not None
        assert brute_force(cx.operations) is False
        assert {op.id for op in cx.operations} <= {op.id for op in ops}
