"""`swarmnode health` against real nodes: healthy when caught up, a reason when not."""

from __future__ import annotations

import subprocess
import sys

from swarmnode import health

from .procs import Cluster, wait_for


def verdict(cluster: Cluster, i: int, *flags: str) -> tuple[int, str]:
    """Exit status and the one line `swarmnode health` prints about node i."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmnode.health",
            "--socket",
            str(cluster.nodes[i].socket),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout + out.stderr
    return out.returncode, lines[0]


def until(cluster: Cluster, code: int, says: str, what: str) -> str:
    """Poll node 0's verdict until it exits `code` with `says` in its line."""

    def check() -> str | None:
        rc, line = verdict(cluster, 0)
        return line if rc == code and says in line else None

    return wait_for(check, what)


def test_health_follows_a_peer_that_hangs_and_comes_back(make_cluster) -> None:
    cluster = make_cluster(2)
    line = until(cluster, 0, "ok: node", "node 0 healthy")
    assert "1 peers alive" in line
    cluster.pause(1)
    try:
        until(cluster, 1, "not caught up: ", "node 0 not caught up")
        assert verdict(cluster, 0, "--live")[0] == 0
        until(cluster, 1, "not caught up: no peer alive", "node 0 to say no peer is alive")
    finally:
        cluster.resume(1)
    until(cluster, 0, "ok: node", "node 0 healthy again")


def test_a_node_that_does_not_answer_is_not_serving(make_cluster) -> None:
    cluster = make_cluster(1)
    assert verdict(cluster, 0)[0] == 0
    cluster.stop(0)
    code, line = verdict(cluster, 0, "--live")
    assert code == health.NOT_SERVING and line.startswith("not serving: ")
