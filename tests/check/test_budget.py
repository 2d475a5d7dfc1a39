"""A spent budget gives "unknown", never a wrong verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.check import check_file

DATA = Path(__file__).parent / "data" / "jepsen-etcd"


@pytest.mark.parametrize(
    ("name", "truth"),
    [("etcd_002.log", "linearizable"), ("etcd_000.log", "not-linearizable")],
)
def test_any_step_budget_gives_the_truth_or_unknown(name: str, truth: str) -> None:
    verdicts = {check_file(DATA / name, max_steps=steps).verdict for steps in (1, 5_000, 50_000)}
    assert verdicts <= {truth, "unknown"}
    assert check_file(DATA / name).verdict == truth


def test_a_search_cut_short_is_unknown() -> None:
    # etcd_002 needs over a million search steps to find its linearization.
    result = check_file(DATA / "etcd_002.log", max_steps=20_000)
    assert result.verdict == "unknown"
    assert result.linearizable is None
    assert result.stats.steps <= 20_000 + 4096
    assert check_file(DATA / "etcd_002.log", timeout=1e-6).verdict == "unknown"
