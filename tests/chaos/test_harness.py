"""The chaos harness end to end: real processes, real faults, every oracle, nothing left behind.

A few seconds of load on three nodes with a kill -9 and (as root) a
partition, or a SIGSTOP without root. Waits are on conditions with generous
bounds (the harness's own convergence wait), never on fixed sleeps.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from swarmnode.chaos.history import read_history
from swarmnode.chaos.nemesis import Window
from swarmnode.chaos.network import PREFIX, have_root
from swarmnode.chaos.run import ChaosOptions, run_chaos

FIELDS = {"index", "time", "process", "type", "f", "key", "value", "error"}


def _leftovers() -> list[str]:
    if not have_root():
        return []
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    mounts = Path("/proc/mounts").read_text()
    import os

    mine = f"{PREFIX}{os.getpid()}"
    return [line for line in names.splitlines() + mounts.splitlines() if mine in line]


@pytest.mark.timeout(600)
def test_a_short_run_with_a_kill_and_a_partition_passes_every_oracle(tmp_path: Path) -> None:
    second = (
        Window(5.0, 2.5, "partition", {"shape": "halves", "a": [0], "b": [1, 2]})
        if have_root() and shutil.which("nft")
        else Window(5.0, 2.5, "pause", {"node": 2})
    )
    opts = ChaosOptions(
        nodes=3,
        seed=5,
        duration=9.0,
        faults=("kill", second.fault),
        clients=3,
        rate=15.0,
        converge_timeout=240.0,
        out=tmp_path,
        plots=False,
        schedule=[Window(1.5, 2.5, "kill", {"node": 1}), second],
    )
    result = run_chaos(opts)
    assert result.ok, (tmp_path / "report.md").read_text()
    assert [w.healed_at is not None for w in result.schedule] == [True, True]
    events = read_history(tmp_path / "history.jsonl")
    assert len(events) == result.counts["all"].get("ok", 0) * 2 + sum(
        result.counts["all"].get(t, 0) * 2 for t in ("fail", "info")
    )
    assert all(set(e) <= FIELDS and e["type"] in ("invoke", "ok", "fail", "info") for e in events)
    assert [e["index"] for e in events] == list(range(len(events)))
    ok = {e["f"] for e in events if e["type"] == "ok"}
    assert {"get", "put", "incr", "sadd", "vput", "cas", "read", "claim"} <= ok
    assert _leftovers() == []


@pytest.mark.skipif(not have_root(), reason="namespaces and mounts need root")
@pytest.mark.timeout(300)
def test_ctrl_c_twice_mid_run_still_removes_everything(tmp_path: Path) -> None:
    import os
    import signal
    import sys
    import time

    def chaos_mounts() -> set[str]:
        lines = Path("/proc/mounts").read_text().splitlines()
        return {x.split()[1] for x in lines if " /tmp/snch-" in x}

    before = chaos_mounts()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swarmnode.chaos",
            "--nodes",
            "3",
            "--duration",
            "120",
            "--nemesis",
            "kill,disk,pause",
            "--out",
            str(tmp_path),
            "--no-plots",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "ok," in line:  # the first progress line: nodes up, clients running
            break
    pid = proc.pid
    os.kill(pid, signal.SIGINT)
    time.sleep(0.2)
    os.kill(pid, signal.SIGINT)  # a second Ctrl-C while it cleans up
    rest = proc.stderr.read()
    assert proc.wait(120) == 130, rest
    assert "everything the run made has been removed" in rest
    tag = f"{PREFIX}{pid}"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert tag not in namespaces
    assert tag not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    bases = [p for p in Path("/tmp").glob("snch-*") if (p / "harness.pid").exists()]
    assert not any((p / "harness.pid").read_text().strip() == str(pid) for p in bases)
    assert chaos_mounts() <= before
