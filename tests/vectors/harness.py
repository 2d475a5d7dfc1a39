"""A real node (store, node, operations, vector index) in one process, on a virtual clock.

Writes commit inline (`InlineCommitter`), so time moves only when a test
moves it: TTL expiry is tested by advancing `clock`, never by sleeping.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from swarmnode.api.handlers import Operations
from swarmnode.config import Config
from swarmnode.node import Node
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.writer import InlineCommitter
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
        self.store = Store(path, StoreConfig(sync=False))
        self.committer = InlineCommitter(self.store, self.clock)
        cfg = Config.for_profile("local", data_dir=path)
        self.node = Node(
            cfg,
            self.store,
            self.committer,
            address=("127.0.0.1", 9),
            rng=random.Random(1),
            now=0.0,
        )
        self.ops = Operations(self.node, snapshots_dir=path / "snapshots")
        self.vectors: VectorMemory = attach_vectors(
            self.node, self.ops, path, self.config, clock=self.clock
        )

    async def call(self, op: str, **args: Any) -> Any:
        return await self.ops.handlers[op](args)

    async def settled(self) -> None:
        """Every committed change is in the index."""
        await self.vectors._ready()
        assert await self.vectors.caught_up(30.0)

    async def close(self) -> None:
        await self.vectors.close()
        self.store.close()
