"""The recorder simulators use: what it writes is what `swarmnode check` reads, and a failed
compare is kept as the read it was."""

from __future__ import annotations

from pathlib import Path

from swarmnode.check import check_file
from swarmnode.check.recorder import Recorder, describe


def test_a_recorded_history_gets_the_same_verdict_in_memory_and_from_its_file(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    a = rec.invoke(1, "cas", "x", [None, 1], 0.0)
    rec.ok(a, 0.1)
    b = rec.invoke(2, "read", "x", None, 0.2)
    rec.ok(b, 0.3, 1)
    stale = rec.invoke(3, "read", "x", None, 0.4)
    rec.ok(stale, 0.5, None)  # the swap finished before this read began: stale
    in_memory = rec.check()
    from_file = check_file(rec.write(tmp_path / "h.jsonl"))
    assert in_memory.verdict == from_file.verdict == "not-linearizable"
    assert "read -> absent" in describe(in_memory)


def test_a_failed_compare_is_a_read_of_the_value_it_found() -> None:
    rec = Recorder()
    w = rec.invoke(1, "cas", "x", [None, 1], 0.0)
    rec.ok(w, 0.1)
    # After the swap to 1 completed, a cas answered "not swapped, the register holds
    # absent" saw a value the register no longer had.
    late = rec.invoke(2, "cas", "x", [5, 6], 0.2)
    rec.compare_failed(late, 0.3, None)
    assert rec.check().linearizable is False
    ok = Recorder()
    w = ok.invoke(1, "cas", "x", [None, 1], 0.0)
    ok.ok(w, 0.1)
    late = ok.invoke(2, "cas", "x", [5, 6], 0.2)
    ok.compare_failed(late, 0.3, 1)
    assert ok.check().linearizable is True


def test_unknown_and_failed_outcomes() -> None:
    rec = Recorder()
    lost = rec.invoke(1, "cas", "x", [None, 7], 0.0)
    rec.info(lost, 0.1)  # may take effect at any time after its invocation
    refused = rec.invoke(2, "cas", "x", [None, 8], 0.2)
    rec.fail(refused, 0.3)  # never took effect
    r = rec.invoke(3, "read", "x", None, 1.0)
    rec.ok(r, 1.1, 7)
    assert rec.check().linearizable is True
    r2 = rec.invoke(4, "read", "x", None, 1.2)
    rec.ok(r2, 1.3, 8)
    assert rec.check().linearizable is False
