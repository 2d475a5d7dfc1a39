"""Assembling a node's service: the table's operations bound to their executors,
behind the steps every call goes through."""

from __future__ import annotations

from pathlib import Path

from swarmnode.runtime.host import NodeHost
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.ops.cluster import ClusterOps
from swarmnode.service.ops.entries import EntryOps
from swarmnode.service.ops.namespaces import NamespaceOps
from swarmnode.service.ops.scans import ScanOps
from swarmnode.service.ops.snapshots import SnapshotOps
from swarmnode.service.ops.watch import WatchOps
from swarmnode.service.steps import Validate


def build_service(
    host: NodeHost,
    *,
    snapshots_dir: Path,
    watch_buffer_bytes: int = 4 << 20,
) -> tuple[Service, NodeServices]:
    """A node's operations behind the validate step (more steps are added by other layers)."""
    node = NodeServices(host, snapshots_dir)
    watch = WatchOps(node, watch_buffer_bytes)
    node.stats_sections.append(lambda: {"watch": watch.stats()})
    service = Service()
    for ops in (
        EntryOps(node),
        ScanOps(node),
        NamespaceOps(node),
        ClusterOps(node),
        SnapshotOps(node),
        watch,
    ):
        ops.register(service)
    service.use(Validate(node.store))
    return service, node
