"""The oracles pass real runs and catch what they exist to catch: they are not vacuous."""

from __future__ import annotations

import random
from pathlib import Path

from swarmnode.config import Config
from swarmnode.sim import oracles
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.workload import Workload, WorkloadConfig
from swarmnode.storage.ops import Put

NS = "sim"


def make(tmp_path: Path, nodes: int = 3) -> Cluster:
    cluster = Cluster(ClusterConfig(seed=4, nodes=nodes), Config.for_profile("local"), tmp_path)
    cluster.start()
    cluster.run_for(2.0)
    return cluster


def load(cluster: Cluster, seconds: float, **kw) -> Workload:
    workload = Workload(cluster, WorkloadConfig(**kw), random.Random(9))
    workload.schedule(cluster.now, cluster.now + seconds)
    cluster.run_for(seconds)
    return workload


def quiet(cluster: Cluster) -> None:
    cluster.network.heal()
    for _ in range(100):
        if oracles.converged(cluster) and oracles.membership_settled(cluster):
            return
        cluster.run_for(0.2)
    raise AssertionError("cluster did not settle")


def issue(cluster: Cluster, workload: Workload, node: int, kind: str, key: str, arg=None):
    record = workload.issue(node, kind, key, arg)
    cluster.run_for(0.001)  # its commit, and so its acknowledgement, is an event of its own
    assert record.ok, record.error
    return record


def test_a_faultless_run_passes_every_oracle(tmp_path):
    cluster = make(tmp_path)
    try:
        workload = load(cluster, 5.0)
        quiet(cluster)
        assert len(workload.history.acked()) > 50
        assert oracles.check_replicas(cluster) == []
        assert oracles.check_history(cluster, workload.history, NS) == []
        assert oracles.check_membership(cluster) == []
    finally:
        cluster.close()


def test_a_write_slipped_into_one_store_behind_its_node_is_found(tmp_path):
    cluster = make(tmp_path)
    try:
        load(cluster, 2.0)
        quiet(cluster)
        sn = cluster.nodes[1]
        sn.store.apply([Put(NS, "r0", "sneaked in")], cluster.wall_ms(sn))
        found = oracles.check_replicas(cluster)
        assert any("n1: Merkle tree" in v for v in found)
        assert any(v.startswith(f"{NS}/r0:") for v in found)
    finally:
        cluster.close()


def test_an_acknowledged_write_whose_only_replica_died_is_reported_lost(tmp_path):
    cluster = make(tmp_path)
    try:
        workload = Workload(cluster, WorkloadConfig(), random.Random(1))
        cluster.network.partition([cluster.nodes[2].addr])
        issue(cluster, workload, 2, "put", "r1", "lost")
        issue(cluster, workload, 2, "incr", "c1", 5)
        cluster.crash(2)
        quiet(cluster)
        found = oracles.check_history(cluster, workload.history, NS)
        assert any("r1: acknowledged write" in v and "lost" in v for v in found)
        assert any(
            "c1: counter is 0, acknowledged increments above" in v and "sum to 5" in v
            for v in found
        )
    finally:
        cluster.close()


def test_a_concurrent_add_survives_a_remove_that_did_not_see_it(tmp_path):
    cluster = make(tmp_path)
    try:
        workload = Workload(cluster, WorkloadConfig(), random.Random(1))
        issue(cluster, workload, 0, "sadd", "s0", "m")
        quiet(cluster)
        cluster.network.partition([cluster.nodes[0].addr], [n.addr for n in cluster.nodes[1:]])
        add = issue(cluster, workload, 0, "sadd", "s0", "m")
        remove = issue(cluster, workload, 1, "srem", "s0", "m")
        assert add.dot not in remove.observed["m"]
        quiet(cluster)
        assert oracles.check_history(cluster, workload.history, NS) == []
        for sn in cluster.live():
            assert sn.store.get(NS, "s0").orset.elems["m"] == {add.dot}
    finally:
        cluster.close()


def test_an_increment_a_reset_did_not_see_survives_it(tmp_path):
    cluster = make(tmp_path)
    try:
        workload = Workload(cluster, WorkloadConfig(), random.Random(1))
        issue(cluster, workload, 0, "incr", "c0", 5)
        quiet(cluster)
        cluster.network.partition([cluster.nodes[0].addr], [n.addr for n in cluster.nodes[1:]])
        issue(cluster, workload, 0, "incr", "c0", 2)
        reset = issue(cluster, workload, 1, "cdel", "c0")
        assert list(reset.floors.values()) == [(5, 0)]
        quiet(cluster)
        assert oracles.check_history(cluster, workload.history, NS) == []
        assert {sn.store.get(NS, "c0").counter.value() for sn in cluster.live()} == {2}
    finally:
        cluster.close()


def test_the_set_model_notices_a_remove_the_replicas_applied_but_the_history_lacks(tmp_path):
    cluster = make(tmp_path)
    try:
        workload = Workload(cluster, WorkloadConfig(), random.Random(1))
        issue(cluster, workload, 0, "sadd", "s0", "m")
        quiet(cluster)
        issue(cluster, workload, 1, "srem", "s0", "m")
        quiet(cluster)
        assert oracles.check_history(cluster, workload.history, NS) == []
        workload.history.ops.pop()
        found = oracles.check_history(cluster, workload.history, NS)
        assert len(found) == 3 and all("add-wins over the history gives ['m']" in v for v in found)
    finally:
        cluster.close()


def test_a_later_write_must_win_everywhere(tmp_path):
    cluster = make(tmp_path)
    try:
        workload = Workload(cluster, WorkloadConfig(), random.Random(1))
        first = issue(cluster, workload, 0, "put", "r0", "old")
        quiet(cluster)
        later = issue(cluster, workload, 1, "put", "r0", "new")
        assert later.order > first.order
        quiet(cluster)
        assert oracles.check_history(cluster, workload.history, NS) == []
        later.order = (first.order[0] - 1, later.order[1])
        found = oracles.check_history(cluster, workload.history, NS)
        assert len(found) == 3 and all("latest acknowledged write is op" in v for v in found)
    finally:
        cluster.close()


def test_membership_reports_a_live_node_that_others_hold_dead(tmp_path):
    cluster = make(tmp_path)
    try:
        cluster.network.partition([cluster.nodes[0].addr])
        cluster.run_for(8.0)
        found = oracles.check_membership(cluster)
        assert any("sees live n0 as dead" in v for v in found)
        quiet(cluster)
        assert oracles.check_membership(cluster) == []
    finally:
        cluster.close()


def test_a_crash_detected_too_late_is_reported():
    detections = [
        {"node": 1, "at": 10.0, "detected_after": 2.0, "down_for": 30.0},
        {"node": 2, "at": 20.0, "detected_after": 9.0, "down_for": 30.0},
        {"node": 3, "at": 30.0, "detected_after": None, "down_for": 3.0},
        {"node": 4, "at": 40.0, "detected_after": None, "down_for": 30.0},
    ]
    found = oracles.check_detection(detections, bound=5.0)
    assert [v.split(":")[0] for v in found] == ["crash of n2 at t=20.00", "crash of n4 at t=40.00"]


def test_the_read_oracle_catches_phantom_values_and_hits_whose_score_is_not_their_vector(
    tmp_path,
):
    cluster = make(tmp_path)
    try:
        workload = load(cluster, 4.0)
        quiet(cluster)
        reads = [op for op in workload.history.acked() if op.kind in ("get", "vsearch")]
        assert reads and workload.violations == []
        get = next(op for op in reads if op.kind == "get")
        get.result = "never written"
        workload.check_read(get)
        assert any("was never put" in what for _, what in workload.violations)
        search = next(op for op in reads if op.kind == "vsearch" and op.result)
        key, value, score = search.result[0]
        search.result[0] = (key, value, score - 0.5)
        workload.violations.clear()
        workload.check_read(search)
        found = [what for _, what in workload.violations]
        assert any("its value's vector gives" in v or "best first" in v for v in found)
    finally:
        cluster.close()
