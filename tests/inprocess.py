"""A node inside the test's own event loop: store, writer thread, node, host and service.

No gossip (a transport that drops everything) and a wall clock the test
controls, so expiry is tested by moving the clock, never by sleeping. Writes
go through the real group-commit writer thread and come back as the node's
`persisted` steps, exactly as in `swarmnode run`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

from swarmnode.config import Config
from swarmnode.metrics import Registry
from swarmnode.node import Node
from swarmnode.runtime.host import NodeHost
from swarmnode.sansio import Address, Message
from swarmnode.service.build import build_service
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.writer import GroupCommitter


class _NoNetwork:
    def send(self, addr: Address, msgs: list[Message]) -> None:
        """A node alone: nothing to send to."""


class _Clock:
    def __init__(self, wall_ms: Callable[[], int]) -> None:
        self.wall_ms = wall_ms

    def monotonic(self) -> float:
        return time.monotonic()


class InProcessNode:
    """Call `await close()` when done; `wall_ms` defaults to the real clock."""

    def __init__(
        self,
        path: Path,
        *,
        wall_ms: Callable[[], int] | None = None,
        store_config: StoreConfig | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        clock = _Clock(wall_ms or (lambda: time.time_ns() // 1_000_000))
        self.store = Store(path, store_config or StoreConfig(sync=False))
        self.metrics = Registry(check_threads=True)
        self.committer = GroupCommitter(
            self.store,
            lambda committed: loop.call_soon_threadsafe(self._committed, committed),
            wall_ms=clock.wall_ms,
            metrics=self.metrics,
        )
        self.committer.start()
        self.config = Config.for_profile("local", data_dir=path)
        self.node = Node(
            self.config,
            self.store,
            address=("127.0.0.1", 9),
            rng=random.Random(1),
            now=0.0,
            metrics=self.metrics,
        )
        self.host = NodeHost(self.node, self.committer, _NoNetwork(), clock, loop)
        self.service, self.services = build_service(self.host, snapshots_dir=path / "snapshots")

    def _committed(self, committed: object) -> None:
        self.host.on_committed(committed)  # type: ignore[arg-type]

    async def close(self) -> None:
        await asyncio.to_thread(self.committer.stop)
        self.host.close()
        self.store.close()
