"""`swarmnode check` / `python -m swarmnode.check`: output lines and exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarmnode.check.cli import main

DATA = Path(__file__).parent / "data" / "jepsen-etcd"


def jsonl(path: Path, events: list[tuple[Any, ...]]) -> Path:
    lines = []
    for index, (process, type, f, value, *key) in enumerate(events):
        event = {"index": index, "time": index * 0.25, "process": process, "type": type, "f": f}
        event["value"] = value
        if key:
            event["key"] = key[0]
        lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return jsonl(
        tmp_path / "good.jsonl",
        [
            (1, "invoke", "write", 1),
            (1, "ok", "write", 1),
            (2, "invoke", "read", None),
            (2, "ok", "read", 1),
            (3, "invoke", "add", "x"),
            (3, "ok", "add", "x"),
        ],
    )


@pytest.fixture
def stale(tmp_path: Path) -> Path:
    return jsonl(
        tmp_path / "stale.jsonl",
        [
            (1, "invoke", "write", 1, "k"),
            (1, "ok", "write", 1, "k"),
            (1, "invoke", "write", 2, "k"),
            (1, "ok", "write", 2, "k"),
            (2, "invoke", "read", None, "k"),
            (2, "ok", "read", 1, "k"),
        ],
    )


def test_one_line_per_file_and_exit_status(
    good: Path, stale: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(good)]) == 0
    out = capsys.readouterr()
    assert out.out == "good.jsonl linearizable\n"
    assert "skipped 1 operations this checker does not model (add: 1)" in out.err
    assert main([str(good), str(stale), str(DATA / "etcd_018.log")]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "good.jsonl linearizable",
        "stale.jsonl not-linearizable",
        "etcd_018.log linearizable",
    ]


def test_explain_prints_the_counterexample(stale: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--explain", str(stale)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "stale.jsonl not-linearizable"
    text = "\n".join(out[1:])
    assert "key 'k': these 3 of its 3 operations cannot be linearized" in text
    assert "write 2 -> ok" in text and "0.750000s (line 4)" in text
    assert "but process 2's read -> 1, completed 1.250000s (line 6), fits no legal order." in text


def test_unreadable_input_names_file_and_line(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"index": 9, "oops"\n')
    assert main([str(bad), str(good)]) == 2
    out = capsys.readouterr()
    assert out.out == "good.jsonl linearizable\n"
    assert f"{bad}:7: " in out.err
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: cannot read" in capsys.readouterr().err


def test_unknown_when_the_budget_runs_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--max-steps", "1000", str(DATA / "etcd_002.log")]) == 3
    assert capsys.readouterr().out == "etcd_002.log unknown\n"


def test_reader_chosen_by_content_when_the_extension_says_nothing(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_text = tmp_path / "history.txt"
    as_text.write_text(good.read_text())
    jepsen_text = tmp_path / "etcd.txt"
    jepsen_text.write_text((DATA / "etcd_000.log").read_text())
    assert main(["-v", str(as_text), str(jepsen_text)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == ["history.txt linearizable", "etcd.txt not-linearizable"]
    assert "history.txt: read as jsonl" in out.err
    assert "etcd.txt: read as jepsen" in out.err


def test_python_dash_m(stale: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "swarmnode.check", str(stale)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == "stale.jsonl not-linearizable\n"
