"""Gossip delivers each write to a node several times; only the first copy costs a merge.

Every delta is sent `retransmit_mult` times and forwarded by whoever finds it
new, so a node receives each write again and again. The copies are recognised
before the store (replication/recent.py): a busy writer must not spend its
write batches merging its own deltas back.
"""

from __future__ import annotations

from dataclasses import replace

from swarmnode.config import Config
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.oracles import converged
from swarmnode.storage.ops import Put

PUTS = 200


def _committed_ops(cluster: Cluster) -> list[int]:
    return [sn.committer.stats()["ops"] for sn in cluster.live()]


def _received(cluster: Cluster) -> list[int]:
    return [sn.node.dissemination.stats["deltas_received"] for sn in cluster.live()]


def _run(tmp_path, dedup_window: float) -> tuple[list[int], list[int]]:
    config = Config.for_profile("local")
    config.dissemination = replace(config.dissemination, dedup_window=dedup_window)
    cluster = Cluster(ClusterConfig(seed=3, nodes=3), config, tmp_path)
    try:
        cluster.start()
        cluster.run_for(3.0)
        ops0, received0 = _committed_ops(cluster), _received(cluster)
        for i in range(PUTS):
            cluster.submit(0, Put("sim", f"k{i}", i))
            cluster.run_for(0.005)
        for _ in range(100):
            cluster.run_for(0.1)
            if converged(cluster) and all(
                sn.node.dissemination.pending() == 0 for sn in cluster.live()
            ):
                break
        assert converged(cluster)
        ops = [b - a for a, b in zip(ops0, _committed_ops(cluster), strict=True)]
        received = [b - a for a, b in zip(received0, _received(cluster), strict=True)]
        return ops, received
    finally:
        cluster.close()


def test_copies_of_a_delta_stop_before_the_store(tmp_path):
    ops, received = _run(tmp_path / "dedup", dedup_window=5.0)
    assert all(r >= 2 * PUTS for r in received[1:]), "every peer got several copies of each"
    # The writer commits its puts and none of the copies peers send; a peer commits each
    # write once. (A little slack for the node's own bookkeeping writes.)
    assert ops[0] <= PUTS + 20
    assert all(o <= PUTS + 20 for o in ops[1:])


def test_without_the_window_every_copy_is_merged(tmp_path):
    ops, _ = _run(tmp_path / "plain", dedup_window=0.0)
    assert all(o >= 2 * PUTS for o in ops[1:])
