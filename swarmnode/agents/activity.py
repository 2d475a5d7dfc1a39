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
from swarmnode.service.chain import Hooks, Next
from swarmnode.service.table import OpSpec, Request

NO_AGENT = "-"


class Activity:
    name = "activity"

    def __init__(self, config: AnalyticsConfig, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.analytics = Analytics(config, clock())

    async def __call__(self, req: Request, nxt: Next) -> Any:
        try:
            result = await nxt(req)
        except SwarmError:
            self._count(req)
            raise
        return self._done(req, result)

    def hooks(self, spec: OpSpec) -> Hooks:
        """Only a count after the call: inline."""
        return Hooks(leave=self._done, fail=self._failed)

    def _count(self, req: Request) -> None:
        self.analytics.count(self.clock(), req.op, req.notes.get("agent") or NO_AGENT)

    def _done(self, req: Request, result: Any) -> Any:
        now = self.clock()
        self.analytics.count(now, req.op, req.notes.get("agent") or NO_AGENT)
        if req.op == "analytics" and isinstance(result, dict):
            result["agents"] = self.by_agent(now, req.args["timeframe"], req.notes.get("principal"))
        return result

    def _failed(self, req: Request, exc: Exception) -> None:
        if isinstance(exc, SwarmError):
            self._count(req)

    def by_agent(self, now: float, timeframe: str, who: Any) -> dict[str, dict[str, int]]:
        report = self.analytics.snapshot(now, timeframe)
        agents = report["operations"]["by_namespace"]
        if who is not None and not who.is_admin:
            return {k: v for k, v in agents.items() if k == who.agent}
        return agents
