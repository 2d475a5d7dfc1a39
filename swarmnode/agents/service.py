"""Wiring the agent layer into a node's service: operations, steps, roster."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.agents.activity import Activity
from swarmnode.agents.authorise import Authorise
from swarmnode.agents.config import AgentsConfig
from swarmnode.agents.ops import AgentOps
from swarmnode.agents.quota import OwnerQuota, QuotaCheck
from swarmnode.agents.registrations import Roster
from swarmnode.analytics import AnalyticsConfig
from swarmnode.service.chain import Service
from swarmnode.service.ops.base import NodeServices


@dataclass
class AgentLayer:
    roster: Roster
    authorise: Authorise
    activity: Activity
    owner_quota: OwnerQuota
    """The quota check of writes forwarded to this node as an owner (`routing/remote.py`)."""


def attach_agents(
    services: NodeServices,
    service: Service,
    config: AgentsConfig,
    analytics: AnalyticsConfig | None = None,
) -> AgentLayer:
    """Register the agent operations, put `authorise` and `activity` before `validate`
    and `quota` after it.

    `authorise` runs before `validate` so that nothing a refused caller sends is
    answered with more than `forbidden`: validation errors name the namespaces that
    exist, and are told which of them the caller may see (`notes["readable"]`)."""
    roster = Roster()
    AgentOps(services, roster, config).register(service)
    authorise = Authorise(services, roster, config)
    activity = Activity(analytics or AnalyticsConfig.lan(), services.host.clock.monotonic)
    service.use(authorise, before="validate")
    service.use(activity, before="validate")
    quota = QuotaCheck(services)
    service.use(quota)
    return AgentLayer(roster, authorise, activity, OwnerQuota(quota, roster))
