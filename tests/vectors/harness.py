"""A real node (store, writer, node, operations, vector index) in the test's event loop.

Its wall clock is the test's (`clock`), so TTL expiry is tested by advancing
the clock, never by sleeping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inprocess import InProcessNode

from swarmnode.storage.ops import Op, OpResult
from swarmnode.vectors.config import VectorConfig
from swarmnode.vectors.service import VectorMemory, attach_vectors

START_MS = 1_700_000_000_000


class Clock:
    def __init__(self, ms: int = START_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


class Harness:
    def __init__(self, path: Path, config: VectorConfig | None = None, clock: Clock | None = None):
        self.path = path
        self.config = config or VectorConfig.local()
        self.clock = clock or Clock()
        self.inner = InProcessNode(path, wall_ms=self.clock)
        self.store = self.inner.store
        self.node = self.inner.node
        self.service = self.inner.service
        self.vectors: VectorMemory = attach_vectors(
            self.inner.host, self.service, path, self.config, clock=self.clock
        )

    async def call(self, op: str, **args: Any) -> Any:
        return await self.service.call(op, args, None)

    async def commit(self, op: Op) -> OpResult:
        """A write the node makes itself (a sweep, a replicated state), waited for."""
        return await self.inner.services.commit(None, op)

    async def settled(self) -> None:
        """Every committed change is in the index."""
        await self.vectors._ready()
        assert await self.vectors.caught_up(30.0)

    async def close(self) -> None:
        await self.vectors.close()
        await self.inner.close()
