"""Three nodes on `lan` timers: every round reaches both peers, so copies only cover loss.

With fanout 3 and two peers the writer needs no epidemic: each peer gets a delta
`direct_copies` times from the writer, and the peers forward it to each other
until one hears it from the other (which then holds it). The copies must still
carry every write through datagram loss on their own, anti-entropy switched off
(its interval pushed beyond the run).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarmnode.config import Config
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.network import LinkProfile
from swarmnode.storage.ops import Put

PUTS = 200


def _received(cluster: Cluster) -> list[int]:
    return [sn.node.dissemination.stats["deltas_received"] for sn in cluster.live()]


def _write(tmp_path, loss: float, seed: int = 5) -> tuple[list[int], list[int], Config]:
    """(deltas each node received per put, keys each node holds) after PUTS on node 0."""
    config = Config.for_profile("lan")
    config.antientropy = replace(config.antientropy, interval=1e6)
    link = LinkProfile(loss=loss)
    cluster = Cluster(ClusterConfig(seed=seed, nodes=3, link=link), config, tmp_path)
    try:
        cluster.start()
        cluster.run_for(5.0)
        before = _received(cluster)
        for i in range(PUTS):
            cluster.submit(0, Put("sim", f"k{i}", i))
            cluster.run_for(0.002)
        for _ in range(50):
            cluster.run_for(0.2)
            if all(sn.node.dissemination.pending() == 0 for sn in cluster.live()):
                break
        received = [b - a for a, b in zip(before, _received(cluster), strict=True)]
        held = [sn.node.trees["sim"].count() for sn in cluster.live()]
        return received, held, config
    finally:
        cluster.close()


def test_each_peer_gets_a_write_from_the_writer_and_the_peers_forward_it_once_between_them(
    tmp_path,
):
    received, held, config = _write(tmp_path, loss=0.0)
    assert held == [PUTS] * 3
    copies = config.dissemination.direct_copies
    # From the writer, `copies` times each; the peers forward each write to each other,
    # but the first forward proves its sender holds the write, so the other sends it no
    # more: `copies` forwarded copies per write in all, not `copies` each. The writer
    # gets none back (each peer heard the write from it and does not send it to it).
    assert all(r >= copies * PUTS for r in received[1:])
    assert sum(received[1:]) == 2 * copies * PUTS + copies * PUTS
    assert received[0] == 0


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
def test_the_copies_alone_carry_every_write_through_ten_percent_loss(tmp_path, seed):
    # Copies left out go only to a peer that sent the write itself: none that could have
    # covered a lost datagram is missing.
    received, held, _ = _write(tmp_path, loss=0.1, seed=seed)
    assert held == [PUTS] * 3  # no anti-entropy ran: gossip alone delivered everything
    assert all(r < 4 * PUTS for r in received[1:])  # and copies were really lost
