"""The simulated cluster runs production nodes through crashes, skewed clocks and slowness."""

from __future__ import annotations

from pathlib import Path

from swarmnode.config import Config
from swarmnode.crdt.hlc import wall_ms
from swarmnode.membership.state import MemberState
from swarmnode.sim.cluster import EPOCH_MS, Cluster, ClusterConfig
from swarmnode.sim.oracles import converged
from swarmnode.sim.run import RunSpec, run
from swarmnode.storage.ops import OpResult, Put


def make(tmp_path: Path, nodes: int = 3, seed: int = 1, **kw) -> Cluster:
    cluster = Cluster(
        ClusterConfig(seed=seed, nodes=nodes, **kw), Config.for_profile("local"), tmp_path
    )
    cluster.start()
    cluster.run_for(2.0)
    return cluster


def put(cluster: Cluster, index: int, key: str, value: object) -> list[OpResult]:
    results: list[OpResult] = []
    cluster.submit(index, Put("sim", key, value), results.append)
    cluster.run_for(0.001)
    return results


def test_nodes_form_one_cluster_and_a_write_reaches_every_replica(tmp_path):
    cluster = make(tmp_path)
    try:
        for view in cluster.views().values():
            assert set(view.values()) == {MemberState.ALIVE} and len(view) == 3
        [result] = put(cluster, 0, "k", "v")
        assert result.error is None
        cluster.run_for(1.0)
        assert converged(cluster)
        assert all(sn.store.get("sim", "k").reg.value == "v" for sn in cluster.live())
    finally:
        cluster.close()


def test_a_crash_keeps_what_was_committed_and_loses_the_memory(tmp_path):
    cluster = make(tmp_path)
    try:
        cluster.network.partition([cluster.nodes[2].addr])
        put(cluster, 2, "only-here", 1)
        before = cluster.nodes[2].node
        cluster.crash(2)
        assert not cluster.nodes[2].up
        cluster.run_for(5.0)
        for viewer in cluster.live():
            assert viewer.node.membership.member(cluster.nodes[2].node_id).state is MemberState.DEAD
        cluster.network.heal()
        cluster.restart(2)
        restarted = cluster.nodes[2]
        assert restarted.node is not before
        assert restarted.node.node_id == before.node_id
        assert restarted.store.get("sim", "only-here").reg.value == 1
        assert restarted.node.membership.members()[0].node_id == restarted.node_id
        cluster.run_for(5.0)
        assert converged(cluster)
        assert cluster.nodes[0].store.get("sim", "only-here").reg.value == 1
    finally:
        cluster.close()


def test_a_skewed_clock_stamps_writes_with_its_own_wall_time(tmp_path):
    cluster = make(tmp_path)
    try:
        cluster.set_skew(1, 2.5)
        written_at = cluster.now
        [result] = put(cluster, 1, "k", "v")
        expected = EPOCH_MS + round((written_at + 2.5) * 1000)
        assert wall_ms(result.value["ts"]) == expected
    finally:
        cluster.close()


def test_writes_from_a_clock_beyond_the_max_offset_wait_until_the_others_catch_up(tmp_path):
    cluster = make(tmp_path)
    try:
        cluster.set_skew(1, 3.0)
        put(cluster, 1, "k", "from the future")
        cluster.run_for(1.0)
        assert cluster.nodes[0].store.get("sim", "k") is None
        assert cluster.nodes[0].node.counters["merge_rejected_clock_skew"] > 0
        cluster.run_for(5.0)
        assert converged(cluster)
        assert cluster.nodes[0].store.get("sim", "k").reg.value == "from the future"
    finally:
        cluster.close()


def test_a_slow_node_handles_its_events_later_and_in_order(tmp_path):
    cluster = make(tmp_path)
    try:
        cluster.set_slow(2, 0.5)
        start = cluster.now
        acked: list[float] = []
        for i in range(3):
            cluster.call(
                2,
                lambda host, i=i: host.submit(Put("sim", f"k{i}", i)).add_done_callback(
                    lambda _: acked.append(cluster.now)
                ),
            )
        # Commits come back as events of their own, which wait behind whatever the
        # busy node has queued meanwhile (gossip, probes), as on a loaded host.
        for _ in range(600):
            if len(acked) == 3:
                break
            cluster.run_for(0.1)
        assert len(acked) == 3
        assert acked == sorted(acked)
        assert acked[-1] - start >= 1.0
    finally:
        cluster.close()


def test_ticking_only_at_deadlines_replays_the_run_ticking_every_interval():
    for scenario in ("partition", "crash"):
        spec = RunSpec(scenario=scenario, seed=3, nodes=4, duration=6.0)
        every_tick = run(RunSpec(**{**spec.__dict__, "tick_mode": "interval"}))
        deadlines = run(spec)
        assert every_tick.ok and deadlines.ok
        assert every_tick.fingerprint() == deadlines.fingerprint()
        assert every_tick.net.messages == deadlines.net.messages
        assert deadlines.events < every_tick.events
