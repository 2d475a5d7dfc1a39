"""Jepsen's etcd logs: the reader's rules, and every stored history against its verdict."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from swarmnode.check import UNKNOWN, History, HistoryError, check_file
from swarmnode.check.jepsen import Keyword, parse_edn, read_jepsen

from .histories import REGISTER

DATA = Path(__file__).parent / "data" / "jepsen-etcd"
VERDICTS = dict(
    line.split() for line in (DATA / "verdicts.txt").read_text().splitlines() if line.strip()
)


def read(text: str) -> History:
    return read_jepsen(text.splitlines(), "etcd.log", REGISTER.functions)


def test_lines_become_operations_by_the_readme_rules() -> None:
    history = read(
        "INFO  jepsen.core - Running test\n"
        "INFO  jepsen.util - 0\t:invoke\t:write\t3\n"
        "INFO  jepsen.util - 1\t:invoke\t:cas\t[3 4]\n"
        "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n"
        "INFO  jepsen.util - 0\t:ok\t:write\t3\n"
        "INFO  jepsen.util - 1\t:fail\t:cas\t[3 4]\n"
        "INFO  jepsen.util - 2   :invoke :read   nil\n"  # spaces, as in some logs
        "INFO  jepsen.util - 2   :fail   :read   :timed-out\n"
        "INFO  jepsen.util - 3\t:invoke\t:write\t1\n"
        "INFO  jepsen.util - 3\t:info\t:write\t:timed-out\n"
        "INFO  jepsen.util - 4\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 4\t:ok\t:read\tnil\n"
        "INFO  jepsen.util - 5\t:invoke\t:cas\t[1 2]\n"
    )
    assert history.format == "jepsen"
    assert history.other_lines == 2
    summary = [(op.process, op.input, op.output, op.call, op.ret) for op in history.ops]
    assert summary == [
        (0, ("write", 3), None, 2, 5),
        (1, ("cas", (3, 4)), False, 3, 6),  # the compare failed: an observation
        (2, ("read", None), UNKNOWN, 7, math.inf),  # timed out: unknown
        (3, ("write", 1), UNKNOWN, 9, math.inf),  # :info: unknown
        (4, ("read", None), None, 11, 12),  # nil: never written
        (5, ("cas", (1, 2)), UNKNOWN, 13, math.inf),  # open at the end
    ]


def test_values_are_read_as_edn() -> None:
    assert parse_edn("nil") is None
    assert parse_edn("-12") == -12
    assert parse_edn("[3 4]") == (3, 4)
    assert parse_edn('[nil "a b" :k [1, 2]]') == (None, "a b", Keyword(":k"), (1, 2))
    assert parse_edn(":timed-out") == Keyword(":timed-out")
    for bad in ("[1 2", "1.5.5", "", "#{1}"):
        with pytest.raises(ValueError):
            parse_edn(bad)


def test_a_bad_value_names_the_line() -> None:
    with pytest.raises(HistoryError, match=r"^etcd\.log:2: cannot read value"):
        read("INFO  jepsen.util - 0\t:invoke\t:write\t3\nINFO  jepsen.util - 0\t:ok\t:write\t{3}\n")
    with pytest.raises(HistoryError, match=r"^etcd\.log:1: a cas value must be \[from to\]"):
        read("INFO  jepsen.util - 0\t:invoke\t:cas\t5\n")


def test_the_stored_set_is_complete() -> None:
    logs = sorted(p.name for p in DATA.glob("*.log"))
    assert logs == sorted(VERDICTS)
    assert len(logs) == 52
    assert sum(v == "linearizable" for v in VERDICTS.values()) == 11


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_jepsen_etcd_history_matches_its_published_verdict(name: str) -> None:
    result = check_file(DATA / name)
    assert result.verdict == VERDICTS[name]
