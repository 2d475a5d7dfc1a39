"""Assembling a node's service: the table's operations bound to their executors,
behind the steps every call goes through."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swarmnode.agents.service import attach_agents
from swarmnode.analytics import Analytics, AnalyticsConfig, Measure, analytics_op, lag_listener
from swarmnode.archive.ops import attach_archive
from swarmnode.config import Config
from swarmnode.routing.feeds import WatchFeeds
from swarmnode.routing.relay import Relays
from swarmnode.routing.remote import RemoteRequests
from swarmnode.routing.route import Route
from swarmnode.runtime.host import NodeHost
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices
from swarmnode.service.ops.cluster import ClusterOps
from swarmnode.service.ops.consensus import ConsensusOps
from swarmnode.service.ops.entries import EntryOps
from swarmnode.service.ops.namespaces import NamespaceOps
from swarmnode.service.ops.scans import ScanOps
from swarmnode.service.ops.snapshots import SnapshotOps
from swarmnode.service.ops.watch import WatchOps
from swarmnode.service.steps import Validate
from swarmnode.vectors.service import VectorMemory, attach_vectors


def build_service(
    host: NodeHost,
    *,
    snapshots_dir: Path,
    watch_buffer_bytes: int = 4 << 20,
) -> tuple[Service, NodeServices]:
    """A node's operations behind the validate, authorise, activity and quota steps and,
    last, the route step (sharded namespaces: a request is authorised, and charged, where
    it arrives, before it travels to an owner); other layers add their steps before route."""
    node = NodeServices(host, snapshots_dir)
    watch = WatchOps(node, watch_buffer_bytes)
    node.stats_sections.append(lambda: {"watch": watch.stats()})
    service = Service()
    consensus = ConsensusOps(node)
    for ops in (
        consensus,
        EntryOps(node, consensus),
        ScanOps(node),
        NamespaceOps(node),
        ClusterOps(node),
        SnapshotOps(node),
        watch,
    ):
        ops.register(service)
    service.use(Validate(node.store))
    config = host.node.config
    profile = AnalyticsConfig.local() if config.profile == "local" else AnalyticsConfig.lan()
    agents = attach_agents(node, service, config.agents, profile)
    node.archiver = attach_archive(node, service, config.archive)
    route = Route(node, service)
    service.use(route)
    timeout = config.placement.request_timeout
    feeds = WatchFeeds(watch, hold=timeout / 2, lease=4 * timeout)
    relays = Relays(node, request_timeout=timeout, recheck=timeout)
    watch.relays = relays
    node.stats_sections.append(lambda: {"watch": {**feeds.stats(), **relays.stats()}})
    host.call_handler = RemoteRequests(node, service, route, feeds, agents.owner_quota)
    return service, node


@dataclass
class NodeService:
    """Everything that serves a node's clients: what `assemble` puts together."""

    service: Service
    services: NodeServices
    vectors: VectorMemory
    analytics: Analytics


def assemble(
    host: NodeHost, config: Config, data_dir: Path, *, inline_vectors: bool = False
) -> NodeService:
    """A node's whole service, the same in `swarmnode run` and the simulator: the operations,
    the vector layer (`vsearch`, the `embed` step), analytics (the `measure` step and
    `analytics`) and the lag of replicated changes. Call it on the node's event loop."""
    service, services = build_service(
        host, snapshots_dir=data_dir / "snapshots", watch_buffer_bytes=config.api.watch_buffer_bytes
    )
    vectors = attach_vectors(
        host, service, data_dir, config.vectors, clock=host.clock.wall_ms, inline=inline_vectors
    )
    services.stats_sections.append(vectors.stats_extras)
    monotonic = host.clock.monotonic
    profile = AnalyticsConfig.local() if config.profile == "local" else AnalyticsConfig.lan()
    analytics = Analytics(profile, monotonic())
    service.register("analytics", analytics_op(analytics, host.metrics, monotonic))
    service.use(Measure(analytics, monotonic, host.metrics), before="authorise")
    host.add_listener(lag_listener(analytics, monotonic, lambda: host.clock.wall_ms() / 1000))
    if not inline_vectors:
        # The simulator (inline) has one thread and virtual time: no background pass there.
        services.archiver.start()
    return NodeService(service, services, vectors, analytics)
