"""Randomized fault runs, 50 seeds: crashes, partitions, isolation, flapping links, loss
and duplication, with clients claiming keys, moving CAS counters, reading through
ReadIndex and deciding conflicts. Raft's safety properties and the clients' histories are
checked after every step, and the CAS history by the linearizability checker at the end
(see `swarmnode/consensus/chaos.py`); longer sweeps are in
`simulations/raft_chaos.py`. A failing seed prints the command that replays it."""

from __future__ import annotations

import pytest

from swarmnode.consensus.chaos import ChaosOptions, run

SHORT = {"fault_ms": 1_200.0, "after_heal_ms": 300.0, "settle_ms": 6_000.0}
PLANS = [
    *[(seed, ChaosOptions(nodes=5, **SHORT)) for seed in range(1, 21)],
    *[(seed, ChaosOptions(nodes=3, disk_ms=1.0, **SHORT)) for seed in range(21, 36)],
    *[
        (seed, ChaosOptions(nodes=5, learners=2, autopilot=True, permanent_crash=True, **SHORT))
        for seed in range(36, 46)
    ],
    *[
        (seed, ChaosOptions(nodes=3, storage="lmdb", disk_ms=0.5, **SHORT))
        for seed in range(46, 51)
    ],
]


@pytest.mark.parametrize(("seed", "options"), PLANS, ids=[f"seed{s}" for s, _ in PLANS])
def test_safety_holds_and_the_group_converges_under_random_faults(seed, options):
    result = run(seed, options)
    schedule = "\n".join(result.faults)
    assert result.ok, f"{result.error}\nreplay: {result.replay(options)}\nfaults:\n{schedule}"
    assert result.counts.get("proposed", 0) > 0 and result.counts.get("reads", 0) > 0
    assert result.counts.get("checked_ops", 0) > 0, "the CAS history went through the checker"
