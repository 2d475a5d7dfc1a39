"""Run one client request through a simulated node's real service layer."""

from __future__ import annotations

from typing import Any

from swarmnode.sim.cluster import Cluster


class Ctx:
    """A request context without observation, as the API gives one; `agent` as its token."""

    observe = None

    def __init__(self, agent: str | None = None) -> None:
        self.agent = agent


def call(
    cluster: Cluster,
    index: int,
    op: str,
    args: dict[str, Any],
    limit: float = 10.0,
    agent: str | None = None,
) -> Any:
    """Run one request on node `index` and the cluster until it is answered."""
    sn = cluster.nodes[index]
    task = cluster.loop.create_task(sn.service.call(op, args, Ctx(agent)))
    end = cluster.now + limit
    while not task.done() and cluster.now < end:
        cluster.run_for(0.01)
    assert task.done(), f"{op} {args} on n{index} not answered within {limit}s"
    return task.result()
