"""Stores on real LMDB in private directories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store

GRACE_S = 100.0
"""Tombstone grace for these tests, in seconds: short enough to reason about in ms."""


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Open stores (`open_store(name="a", **StoreConfig fields)`); all closed after the test.

    fsync is off: these tests are about what a commit contains, not whether it
    survives a power cut (the process tests kill real nodes for that).
    """
    opened: list[Store] = []

    def open_(name: str = "store", **config: object) -> Store:
        config.setdefault("sync", False)
        config.setdefault("tombstone_grace", GRACE_S)
        store = Store(tmp_path / name, StoreConfig(**config))  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    return open_store()
