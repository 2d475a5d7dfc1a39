"""Operations per agent, over the same windows as `analytics`.

The `activity` step (right after `authorise`) counts every request under the
agent it speaks for (`-`: none), in an `Analytics` of its own whose
"namespace" slot holds the agent: the same bounded buckets and windows, so a
week of traffic costs the same bounded memory. Only counts are reported per
agent, so only counts are kept (no latency histograms: `measure` has those).
`analytics` answers gain an `agents` section: `{agent: {op: count}}` for the
administrator, only the caller's own line for an agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swarmnode.analytics import Analytics, AnalyticsConfig
from swarmnode.errors import SwarmError
from swarmnode.service.chain import Next
from swarmnode.service.table import Request

NO_AGENT = "-"


class Activity:
    name = "activity"

    def __init__(self, config: AnalyticsConfig, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.analytics = Analytics(config, clock())

    async def __call__(self, req: Request, nxt: Next) -> Any:
        agent = req.notes.get("agent") or NO_AGENT
        try:
            result = await nxt(req)
        except SwarmError:
            self.analytics.count(self.clock(), req.op, agent)
            raise
        now = self.clock()
        self.analytics.count(now, req.op, agent)
        if req.op == "analytics" and isinstance(result, dict):
            result["agents"] = self.by_agent(now, req.args["timeframe"], req.notes.get("principal"))
        return result

    def by_agent(self, now: float, timeframe: str, who: Any) -> dict[str, dict[str, int]]:
        report = self.analytics.snapshot(now, timeframe)
        agents = report["operations"]["by_namespace"]
        if who is not None and not who.is_admin:
            return {k: v for k, v in agents.items() if k == who.agent}
        return agents
