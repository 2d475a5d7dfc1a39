"""The JSONL history format, exactly as the simulator and chaos harness write it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from swarmnode.check import UNKNOWN, History, HistoryError, check_history
from swarmnode.check.jsonl import freeze, read_jsonl

from .histories import REGISTER


def ev(index: int, process: int | str, type: str, f: str, value: Any = None, **extra: Any) -> str:
    event = {"index": index, "time": index / 10, "process": process, "type": type, "f": f}
    event["value"] = value
    event.update(extra)
    return json.dumps(event)


def read(lines: list[str]) -> History:
    return read_jsonl(lines, "run.jsonl", REGISTER.functions)


def test_events_pair_into_operations_with_inputs_outputs_and_windows() -> None:
    history = read(
        [
            ev(0, 1, "invoke", "write", 3, key="k"),
            ev(1, "c2", "invoke", "read", key="k"),
            ev(2, 1, "ok", "write", 3, key="k"),
            ev(3, "c2", "ok", "read", 3),  # a completion may leave out the key
            ev(4, 1, "invoke", "cas", [3, 4], key="k"),
            ev(5, 1, "ok", "cas", [3, 4], key="k"),
        ]
    )
    assert history.format == "jsonl"
    write, read_op, cas = history.ops
    assert (write.process, write.key, write.input, write.output) == (
        1,
        "k",
        ("write", freeze(3)),
        None,
    )
    assert (write.call, write.ret, write.call_time, write.ret_time) == (0, 2, 0.0, 0.2)
    assert (read_op.process, read_op.input, read_op.output) == ("c2", ("read", None), freeze(3))
    assert (cas.input, cas.output) == (("cas", (freeze(3), freeze(4))), True)
    assert check_history(history.ops, REGISTER).linearizable is True


def test_info_and_open_at_the_end_are_pending_fail_is_dropped() -> None:
    history = read(
        [
            ev(0, 1, "invoke", "write", 1),
            ev(1, 1, "info", "write", 1),
            ev(2, 1, "invoke", "write", 2),  # the process may go on after info
            ev(3, 2, "invoke", "write", 9),
            ev(4, 2, "fail", "write", 9),
            ev(5, 3, "invoke", "cas", [None, 5]),
        ]
    )
    assert history.dropped_failed == 1
    assert [(op.input[1], op.output, op.ret) for op in history.ops] == [
        (freeze(1), UNKNOWN, math.inf),
        (freeze(2), UNKNOWN, math.inf),
        ((None, freeze(5)), UNKNOWN, math.inf),
    ]


def test_a_failed_write_certainly_did_not_happen() -> None:
    history = read(
        [
            ev(0, 1, "invoke", "write", 1),
            ev(1, 1, "fail", "write", 1),
            ev(2, 2, "invoke", "read"),
            ev(3, 2, "ok", "read", 1),
        ]
    )
    assert check_history(history.ops, REGISTER).linearizable is False


def test_null_is_absent_and_values_compare_as_canonical_json() -> None:
    lines = [
        ev(0, 1, "invoke", "read"),
        ev(1, 1, "ok", "read", None),
        ev(2, 1, "invoke", "write", {"b": 1, "a": [1, 2]}),
        ev(3, 1, "ok", "write"),
        ev(4, 1, "invoke", "read"),
        ev(5, 1, "ok", "read", {"a": [1, 2], "b": 1}),
        ev(6, 1, "invoke", "cas", [{"a": [1, 2], "b": 1}, None]),
        ev(7, 1, "ok", "cas"),
        ev(8, 1, "invoke", "read"),
        ev(9, 1, "ok", "read", None),
    ]
    assert check_history(read(lines).ops, REGISTER).linearizable is True
    for written, seen in [(1, 1.0), (1, True), ("1", 1)]:
        lines = [
            ev(0, 1, "invoke", "write", written),
            ev(1, 1, "ok", "write"),
            ev(2, 1, "invoke", "read"),
            ev(3, 1, "ok", "read", seen),
        ]
        assert check_history(read(lines).ops, REGISTER).linearizable is False


def test_events_are_ordered_by_index_not_by_line() -> None:
    in_order = [
        ev(0, 1, "invoke", "write", 1),
        ev(1, 1, "ok", "write", 1),
        ev(2, 2, "invoke", "read"),
        ev(3, 2, "ok", "read", None),
    ]
    shuffled = [in_order[2], in_order[0], in_order[3], in_order[1]]
    assert check_history(read(shuffled).ops, REGISTER).linearizable is False
    assert [(op.call, op.ret) for op in read(shuffled).ops] == [(0, 1), (2, 3)]


def test_other_functions_are_counted_and_skipped() -> None:
    history = read(
        [
            ev(0, 1, "invoke", "incr", 5, key="n"),
            ev(1, 2, "invoke", "claim", "task-1"),
            ev(2, 1, "ok", "incr", 5, key="n"),
            ev(3, 2, "fail", "claim"),
            ev(4, 1, "invoke", "incr", 1, key="n"),
            ev(5, 3, "invoke", "write", 1),
            ev(6, 3, "ok", "write", 1),
        ]
    )
    assert [op.f for op in history.ops] == ["write"]
    assert dict(history.ignored) == {"incr": 2, "claim": 1}


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["{not json"], 1, "Expecting property name"),
        (["[1, 2]"], 1, "a JSON object"),
        (['{"time": 0, "process": 1, "type": "invoke", "f": "read"}'], 1, "'index'"),
        ([ev(0, 1, "invoke", "read").replace('"index": 0', '"index": "0"')], 1, "an integer"),
        ([ev(0, 1, "begin", "read")], 1, "'type' must be one of"),
        ([ev(0, 1.5, "invoke", "read")], 1, "an integer or a string"),
        ([ev(0, 1, "invoke", "read", key=7)], 1, "'key' must be a string"),
        ([ev(0, 1, "invoke", "cas", [1])], 1, "[expected, new]"),
        ([ev(0, 1, "invoke", "read"), "", ev(0, 2, "invoke", "read")], 3, "index 0 already"),
        ([ev(0, 1, "ok", "read", 1)], 1, "never invoked"),
        ([ev(0, 1, "invoke", "read"), ev(1, 1, "invoke", "write", 2)], 2, "still open"),
        ([ev(0, 1, "invoke", "read"), ev(1, 1, "ok", "write")], 2, "open operation is read"),
        ([ev(0, 1, "invoke", "read", key="a"), ev(1, 1, "ok", "read", key="b")], 2, "key 'b'"),
        ([ev(1, 1, "invoke", "read"), ev(0, 2, "invoke", "read", time=0.5)], 1, "disagree"),
        (
            [ev(0, 1, "invoke", "read"), ev(1, 1, "ok", "read").replace(', "value": null', "")],
            2,
            "must carry the value read",
        ),
    ],
)
def test_bad_input_names_the_line(lines: list[str], line: int, message: str) -> None:
    with pytest.raises(HistoryError) as caught:
        read(lines)
    assert caught.value.line == line
    assert f"run.jsonl:{line}:" in str(caught.value)
    assert message in str(caught.value)
