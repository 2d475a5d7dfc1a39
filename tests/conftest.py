"""Fixtures shared by every layer's tests: real node processes on private data directories.

    def test_something(launch_node):
        node = launch_node()                  # a ready `swarmnode run` process
        with node.client() as c:
            c.put("default", "k", "v")
        node.kill()                           # SIGKILL
        again = launch_node(node.data_dir)    # same data, new process

`launch_node` stops (SIGTERM, then SIGKILL) whatever it started when the test
ends; `shared_node` is one node for a whole module, for tests that only need
a node to talk to. See `tests/nodeproc.py` for the helpers behind them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from nodeproc import NodeProcess, remove_dir, short_dir, start_node

# Hypothesis fails an example that takes over 200 ms (and then calls the test flaky when
# the rerun is fast): on a loaded CI machine one descheduling does that. No property test
# here is about speed, so none has a deadline; the pytest timeout still catches hangs.
settings.register_profile("swarmnode", deadline=None)
settings.load_profile("swarmnode")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A private directory with a path short enough to hold Unix sockets."""
    path = short_dir()
    yield path
    remove_dir(path)


@pytest.fixture
def launch_node(short_tmp: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start ready nodes: `launch_node(data_dir=None, *flags, **spawn_node_kwargs)`.

    Without a data_dir each call gets a fresh one under `short_tmp`.
    """
    started: list[NodeProcess] = []
    fresh = iter(range(1_000_000))

    def launch(data_dir: Path | None = None, *args: str, **kwargs: Any) -> NodeProcess:
        if data_dir is None:
            data_dir = short_tmp / f"node{next(fresh)}"
        node = start_node(data_dir, *args, **kwargs)
        started.append(node)
        return node

    yield launch
    for node in started:
        node.close()


@pytest.fixture
def node(launch_node: Callable[..., NodeProcess]) -> NodeProcess:
    """One fresh node for this test."""
    return launch_node()


@pytest.fixture(scope="module")
def shared_node() -> Iterator[NodeProcess]:
    """One node for a whole test module; tests must use keys of their own."""
    base = short_dir()
    node = start_node(base / "data")
    yield node
    node.close()
    remove_dir(base)
