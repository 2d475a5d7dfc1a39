"""Shared pieces of the scenario scripts: building clusters, waiting, writing reports and plots."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from swarmnode.config import Config
from swarmnode.membership.state import MemberState
from swarmnode.sim.cluster import Cluster, ClusterConfig
from swarmnode.sim.network import Latency, LinkProfile
from swarmnode.storage.ops import Put

RESULTS = Path(__file__).resolve().parent / "results"
NS = "sim"


@contextlib.contextmanager
def cluster(
    nodes: int,
    seed: int,
    *,
    config: Config | None = None,
    latency: Latency | None = None,
    start_spread: float = 1.0,
    tick_mode: str = "deadline",
    invariants_every: float = 0.0,
) -> Iterator[Cluster]:
    """A started cluster on the `lan` defaults (unless `config` says otherwise), then cleaned up."""
    workdir = Path(tempfile.mkdtemp(prefix="swarmsim-"))
    c = Cluster(
        ClusterConfig(
            seed=seed,
            nodes=nodes,
            start_spread=start_spread,
            link=LinkProfile(latency=latency or Latency(0.001, 0.5, "uniform")),
            tick_mode=tick_mode,
            invariants_every=invariants_every,
        ),
        config or Config.for_profile("lan"),
        workdir,
    )
    try:
        c.start()
        yield c
    finally:
        c.close()
        shutil.rmtree(workdir, ignore_errors=True)


def formed(c: Cluster) -> bool:
    """Every node is up and sees every other one alive."""
    live = c.live()
    if len(live) < len(c.nodes):
        return False
    ids = {sn.node_id for sn in live}
    for sn in live:
        assert sn.node is not None
        alive = {m.node_id for m in sn.node.membership.members() if m.state is MemberState.ALIVE}
        if not ids <= alive:
            return False
    return True


def wait_for(c: Cluster, done: Callable[[], bool], limit: float, step: float = 0.5) -> float | None:
    """Run until `done()`; the virtual seconds it took, None if not within `limit`."""
    start = c.now
    while not done():
        if c.now - start >= limit:
            return None
        c.run_for(step)
    return c.now - start


def put(c: Cluster, index: int, key: str, value: Any) -> None:
    c.call(index, lambda host: host.submit(Put(NS, key, value)))


class Stopwatch:
    """Virtual and wall seconds over a stretch of simulation: the simulator's speed."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.virtual0 = c.now
        self.wall0 = time.perf_counter()

    def speed(self) -> float:
        wall = time.perf_counter() - self.wall0
        return (self.c.now - self.virtual0) / wall if wall > 0 else float("inf")


def save_json(name: str, data: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


def save_report(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text.rstrip() + "\n")
    return path


def save_plot(fig: Any, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)
