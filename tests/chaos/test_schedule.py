"""Fault schedules replay from their seed, and partitions cut exactly what their shape says."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from swarmnode.chaos.nemesis import FAULTS, ScheduleConfig, grudges_of, make_schedule


def test_the_same_seed_draws_the_same_schedule_and_another_seed_another() -> None:
    cfg = ScheduleConfig(duration=300.0)
    a, b = make_schedule(42, 5, cfg), make_schedule(42, 5, cfg)
    assert [(w.start, w.duration, w.fault, w.params) for w in a] == [
        (w.start, w.duration, w.fault, w.params) for w in b
    ]
    assert a != make_schedule(43, 5, cfg)


def test_windows_never_overlap_and_end_within_the_run() -> None:
    for seed in range(50):
        windows = make_schedule(seed, 5, ScheduleConfig(duration=120.0))
        assert all(w.end <= 120.0 for w in windows)
        assert all(a.end <= b.start for a, b in itertools.pairwise(windows))
        assert {w.fault for w in windows} <= set(FAULTS)


@given(st.integers(0, 10_000), st.integers(3, 9))
def test_partitions_cut_what_their_shape_says(seed: int, n: int) -> None:
    cfg = ScheduleConfig(faults=("partition",), duration=400.0)
    for w in make_schedule(seed, n, cfg):
        g = grudges_of(w.params, n)
        hears = {i: set(range(n)) - g[i] - {i} for i in range(n)}
        p = w.params
        if p["shape"] in ("halves", "majority"):
            for i in p["a"]:
                assert hears[i] == set(p["a"]) - {i}
            assert len(p["a"]) < n and len(p["b"]) < n
        elif p["shape"] == "bridge":
            mid = p["bridge"]
            assert hears[mid] == set(range(n)) - {mid}
            for i in p["a"]:
                assert mid in hears[i] and not hears[i] & set(p["b"])
        elif p["shape"] == "ring":
            for i in range(n):
                assert len(hears[i]) == 2
                assert all(i in hears[j] for j in hears[i])
        else:
            for i in p["deaf"]:
                assert not hears[i] & set(p["unheard"])
            for j in p["unheard"]:
                assert set(p["deaf"]) <= hears[j]
