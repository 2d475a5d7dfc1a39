"""Wiring the agent layer into a node's service: operations, steps, roster."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.agents.activity import Activity
from swarmnode.agents.authorise import Authorise
from swarmnode.agents.config import AgentsConfig
from swarmnode.agents.ops import AgentOps
from swarmnode.agents.quota import QuotaCheck
from swarmnode.agents.registrations import Roster
from swarmnode.analytics import AnalyticsConfig
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices


@dataclass
class AgentLayer:
    roster: Roster
    authorise: Authorise
    activity: Activity


def attach_agents(
    services: NodeServices,
    service: Service,
    config: AgentsConfig,
    analytics: AnalyticsConfig | None = None,
) -> AgentLayer:
    """Register the agent operations and put `authorise` and `activity` before `embed`
    (or at the end of the chain when there is none) and `quota` just before execute."""
    roster = Roster()
    AgentOps(services, roster, config).register(service)
    authorise = Authorise(services, roster, config)
    activity = Activity(analytics or AnalyticsConfig.lan(), services.host.clock.monotonic)
    names = [s.name for s in service.steps]
    before = "embed" if "embed" in names else None
    service.use(authorise, before=before)
    service.use(activity, before=before)
    service.use(QuotaCheck(services))
    return AgentLayer(roster, authorise, activity)
