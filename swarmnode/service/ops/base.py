"""What the executors share: the node they serve, its store, clock and stats."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmnode.metrics import merge_tree
from swarmnode.runtime.host import NodeHost
from swarmnode.service.table import Request
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Op, OpResult


def agent_of(req: Request | None) -> str | None:
    """The agent a request speaks for (set by the `authorise` step; None: no agent)."""
    return req.notes.get("agent") if req is not None else None


@dataclass
class NodeServices:
    host: NodeHost
    snapshots_dir: Path
    stats_sections: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    """Parts of `stats` that are not metrics in the node's registry (watch streams, vector
    shards, RESP command tallies), merged into it."""
    archiver: Any = None
    """The node's `archive.archiver.Archiver` (its background pass starts in `assemble`)."""

    @property
    def store(self) -> Store:
        return self.host.node.store

    def wall_ms(self) -> int:
        return self.host.clock.wall_ms()

    def stats(self) -> dict[str, Any]:
        """The `stats` result: the registry's snapshot, the node's own non-metric parts and
        every section added here (a key given by two sources is a bug, and raises)."""
        out = self.host.stats()
        for section in self.stats_sections:
            merge_tree(out, section())
        return out

    async def commit(self, req: Request | None, op: Op) -> OpResult:
        """Propose a write and wait until it is durable; its error is raised.

        A request whose context carries an `observe` callback (the simulator's
        workload) gets the committed result, changes included, before the reply.
        """
        result = await self.host.submit(op)
        observe = getattr(req.ctx, "observe", None) if req is not None else None
        if observe is not None:
            observe(result)
        if result.error is not None:
            raise result.error
        return result
