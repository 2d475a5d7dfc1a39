"""The workload issues valid operations of every kind and records what each one did."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from swarmnode.config import Config
from swarmnode.crdt.hlc import wall_ms
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.workload import KINDS, Workload, WorkloadConfig


def loaded(tmp_path: Path, seconds: float = 5.0, **kw) -> tuple[Cluster, Workload]:
    cluster = Cluster(ClusterConfig(seed=2, nodes=3), Config.for_profile("local"), tmp_path)
    cluster.start()
    cluster.run_for(1.0)
    workload = Workload(cluster, WorkloadConfig(**kw), random.Random(3))
    workload.schedule(cluster.now, cluster.now + seconds)
    cluster.run_for(seconds)
    return cluster, workload


def test_every_kind_is_issued_and_acknowledged_and_each_key_keeps_one_type(tmp_path):
    cluster, workload = loaded(tmp_path)
    try:
        ops = workload.history.ops
        assert set(Counter(op.kind for op in ops)) == set(KINDS)
        assert all(op.ok for op in ops), [op.line() for op in ops if not op.ok][:3]
        families = {
            "put": "r", "delete": "r", "get": "r", "incr": "c", "cdel": "c", "vput": "v",
            "vsearch": "*",
        }  # fmt: skip
        for op in ops:
            assert op.key[0] == families.get(op.kind, "s")
            assert op.acked is not None and op.acked >= op.invoked
    finally:
        cluster.close()


def test_writes_record_what_the_oracles_need(tmp_path):
    cluster, workload = loaded(tmp_path, ttl_share=0.5)
    try:
        ops = workload.history.acked()
        puts = [op for op in ops if op.kind == "put"]
        assert all(op.order is not None and not op.deleted for op in puts)
        with_ttl = [op for op in puts if op.ttl is not None]
        assert with_ttl
        for op in with_ttl:
            assert op.expires_at == wall_ms(op.order[0]) + int(op.ttl * 1000)
        assert all(op.dot is not None for op in ops if op.kind == "sadd")
        assert all(op.actor is not None for op in ops if op.kind == "incr")
        searches = [op for op in ops if op.kind == "vsearch"]
        assert searches and any(op.result for op in searches), "vsearch found vectors"
        gets = [op for op in ops if op.kind == "get"]
        assert any(op.result is not None for op in gets), "some get read a value"
    finally:
        cluster.close()


def test_an_operation_for_a_crashed_node_is_refused_and_never_counted(tmp_path):
    cluster, workload = loaded(tmp_path, seconds=0.0)
    try:
        cluster.crash(1)
        record = workload.issue(1, "put", "r0", "nobody home")
        assert record.status == "unavailable" and record.acked is None
        assert record not in workload.history.acked()
    finally:
        cluster.close()


def test_the_same_seed_draws_the_same_operations(tmp_path):
    first_cluster, first = loaded(tmp_path / "a", seconds=2.0)
    second_cluster, second = loaded(tmp_path / "b", seconds=2.0)
    try:
        assert first.history.lines() == second.history.lines()
    finally:
        first_cluster.close()
        second_cluster.close()
