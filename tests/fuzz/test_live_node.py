"""A running node survives a short burst of random and mutated frames on both its ports.

The long version is `python fuzz/live_node.py --count 200000` (fuzz/RESULTS.md);
this one sends a few thousand inputs and asserts the same things: the node
still answers, lost no acknowledged write, logged no error and kept its RSS
within bound.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


def live_node():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("fuzz_live_node", FUZZ / "live_node.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_live_node"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_a_node_fed_garbage_still_answers_and_keeps_every_acknowledged_write() -> None:
    result = live_node().run_live_fuzz(3000, seed=7)
    assert result.exited is None, "the node process exited"
    assert result.answered_after
    assert result.acked >= 50 and result.lost == []
    assert result.log_errors == []
    assert result.rss_max <= result.rss_bound
    assert result.sent["client"] and result.sent["datagram"] and result.sent["stream"]
