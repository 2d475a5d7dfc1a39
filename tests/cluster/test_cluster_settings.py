"""Two real nodes with different Merkle tree shapes refuse each other, loudly, for good."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from nodeproc import NodeProcess

from swarmnode.errors import NotFound

from .procs import loopback_hosts, wait_for

NS = "default"


def refusal_line(node: NodeProcess, peer: NodeProcess, ours: int, theirs: int) -> str | None:
    """The WARNING line in `node`'s log refusing `peer` over the tree fanout, if logged yet."""
    pattern = re.compile(
        rf" WARNING swarmnode\.membership event=peer_refused peer={peer.node_id} "
        rf"addr=\S+ setting=antientropy\.tree_fanout ours={ours} theirs={theirs} "
    )
    return next((line for line in node.log().splitlines() if pattern.search(line)), None)


def test_nodes_with_different_tree_shapes_never_join(
    launch_node: Callable[..., NodeProcess], short_tmp: Path
) -> None:
    other_shape = short_tmp / "fanout4.toml"
    other_shape.write_text("[antientropy]\ntree_fanout = 4\ntree_depth = 8\n")
    first_host, second_host = loopback_hosts(2)
    first = launch_node(None, bind=f"{first_host}:0")
    second = launch_node(
        None, "--config", str(other_shape), "--join", first.gossip, bind=f"{second_host}:0"
    )

    wait_for(lambda: refusal_line(first, second, 16, 4), "the first node to refuse the second")
    wait_for(lambda: refusal_line(second, first, 4, 16), "the second node to refuse the first")

    with first.client() as a, second.client() as b:
        a.put(NS, "only-here", "first")
        b.put(NS, "only-there", "second")
        for c, me in ((a, first), (b, second)):
            assert [m["node_id"] for m in c.members()["members"]] == [me.node_id]
            report = c.sync()
            assert (report["peers"], report["rounds_ok"], report["rounds_failed"]) == (0, 0, 0)
        with pytest.raises(NotFound):
            b.get(NS, "only-here")
        with pytest.raises(NotFound):
            a.get(NS, "only-there")
        assert a.stats()["antientropy"]["rounds_failed"] == 0
    for node in (first, second):
        assert "event=member_joined" not in node.log()
