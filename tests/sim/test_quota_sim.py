"""Writers of one agent on several simulated nodes race its quota: the documented bound holds.

Over seeds, with two and three nodes: the final usage (the same on every
node) stays within the limit plus what each node admitted within the longest
propagation delay of the run (`swarmnode/sim/quota.py`). One node alone never
goes over: its in-flight writes are reserved and its estimates are never below
what a write really costs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from swarmnode.sim.quota import quota_run
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store


@pytest.mark.parametrize("nodes", [2, 3])
def test_concurrent_writers_stay_within_the_documented_bound(tmp_path: Path, nodes: int) -> None:
    overran = 0
    for seed in range(8):
        report = quota_run(seed, tmp_path / f"{nodes}-{seed}", nodes=nodes)
        report.check()
        assert report.refused > 0, f"seed {seed}: the quota was never reached"
        overran += report.overrun > 0
    assert overran, "no run overran: the race was never exercised"


def test_one_node_alone_never_goes_over(tmp_path: Path) -> None:
    for seed in range(4):
        report = quota_run(seed, tmp_path / str(seed), nodes=1)
        assert report.final_usage <= report.limit, report
        assert report.refused > 0


def test_the_estimate_of_a_write_is_never_below_what_it_is_charged(tmp_path: Path) -> None:
    """What keeps a single node within its quota (checked against the engine's own charge)."""
    from swarmnode.agents.quota import ACTOR_BYTES, MEMBER_OVERHEAD, RECORD_OVERHEAD
    from swarmnode.crdt.codec import packb
    from swarmnode.storage.ops import Incr, Put, SAdd

    store = Store(tmp_path / "s", StoreConfig(sync=False))
    rng = random.Random(5)
    now = 1_800_000_000_000
    try:
        for i in range(300):
            agent = rng.choice(["a", "agent-with-a-long-name"])
            ns = rng.choice(["default", "agent:x"])
            key = "k" * rng.randint(1, 300) + str(i)
            fixed = len(key) + len(ns) + 1 + RECORD_OVERHEAD + len(store.node_id) + len(agent)
            actor = len(store.node_id) + ACTOR_BYTES
            kind = rng.choice(["put", "incr", "sadd"])
            if kind == "put":
                value = {"v": "x" * rng.randint(0, 500), "n": rng.random()}
                meta = rng.choice([None, {"tag": "t" * rng.randint(1, 40)}])
                op = Put(ns, key, value, meta=meta, agent=agent)
                estimate = fixed + len(packb(value)) + (len(packb(meta)) if meta else 0)
            elif kind == "incr":
                op = Incr(ns, key, rng.randint(-9, 9) or 1, agent=agent)
                estimate = fixed + actor
            else:
                members = [f"m{rng.randint(0, 10**6)}" * rng.randint(1, 5) for _ in range(5)]
                op = SAdd(ns, key, members, agent=agent)
                estimate = fixed + actor + sum(len(m) + actor + MEMBER_OVERHEAD for m in members)
            before = store.catalog.usage_of(agent)[0]
            [result] = store.apply([op], now + i)
            assert result.error is None
            charged = store.catalog.usage_of(agent)[0] - before
            assert charged <= estimate, (kind, charged, estimate)
    finally:
        store.close()
