"""The clock shim moves what a real process reads from the wall clock, and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarmnode.chaos.clock import ENV_FILE, ClockUnavailable, NodeClock, build_shim

PROBE = """
import json, sys, time
for line in sys.stdin:
    t0, m0 = time.time(), time.monotonic()
    time.sleep(0.05)
    print(json.dumps([time.time(), time.monotonic(), time.time() - t0, time.monotonic() - m0]))
    sys.stdout.flush()
"""


@pytest.fixture
def probe(tmp_path: Path):
    try:
        shim = build_shim(tmp_path)
    except ClockUnavailable as exc:
        pytest.skip(str(exc))
    clock = NodeClock(tmp_path / "clock")
    env = dict(os.environ, LD_PRELOAD=str(shim), **{ENV_FILE: str(clock.path)})
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )

    def read() -> list[float]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    yield clock, read
    proc.kill()
    proc.wait()


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value


def test_a_jump_moves_the_wall_clock_and_leaves_the_monotonic_clock_and_sleeps_alone(probe) -> None:
    clock, read = probe
    wall, _, slept_wall, slept_mono = read()
    assert abs(wall - time.time()) < 1.0
    assert 0.04 < slept_mono < 5 and 0.04 < slept_wall < 5
    clock.jump(30.0)
    shifted = wait_for(lambda: (lambda r: r if r[0] - time.time() > 29 else None)(read()))
    assert shifted is not None and shifted[0] - time.time() < 31
    assert 0.04 < shifted[3] < 5  # time.sleep still sleeps what it was asked
    clock.reset()
    back = wait_for(lambda: (lambda r: r if abs(r[0] - time.time()) < 1 else None)(read()))
    assert back is not None


def test_drift_makes_the_wall_clock_run_fast(probe) -> None:
    clock, read = probe
    clock.drift(2.0)
    first = read()
    time.sleep(0.5)
    second = read()
    assert (second[0] - first[0]) / (second[1] - first[1]) == pytest.approx(2.0, rel=0.2)
