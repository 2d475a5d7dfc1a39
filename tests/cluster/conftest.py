"""Fixtures of the multi-process tests: clusters of real nodes, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nodeproc import remove_dir, short_dir

from .procs import Cluster


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    """`make_cluster(size, **Cluster.start kwargs)`: a running cluster, closed at teardown."""
    base = short_dir("snc-")
    clusters: list[Cluster] = []

    def make(size: int, **kwargs: Any) -> Cluster:
        cluster = Cluster.start(base / f"c{len(clusters)}", size, **kwargs)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()
    remove_dir(base)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A private directory for key files and the like."""
    path = short_dir("snk-")
    yield path
    remove_dir(path)
