"""One seed, one history: a cluster run replays event for event, in any process.

Replay is what makes a failed simulation debuggable, and it breaks quietly
(iterating a set of strings, a stray global random call), so it is checked
both within one process and across processes with different hash seeds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from .simnet import SimNet

ROOT = Path(__file__).resolve().parents[2]


def scenario(seed: int) -> tuple[list, dict]:
    net = SimNet(seed, loss=0.02)
    addrs = net.start_cluster(12)
    net.run_for(5)
    net.crash(addrs[3])
    net.partition(addrs[:5], addrs[5:])
    net.run_for(20)
    net.heal()
    net.leave(addrs[7])
    net.run_for(20)
    return net.events, dict(net.counters.by_type)


def digest(result: tuple[list, dict]) -> str:
    events, counters = result
    return hashlib.sha256(repr((events, sorted(counters.items()))).encode()).hexdigest()


def test_the_same_seed_gives_the_identical_event_sequence():
    first = scenario(21)
    assert first == scenario(21)
    assert first[0] and first != scenario(22)


def test_a_run_replays_identically_in_processes_with_other_hash_seeds():
    code = "from tests.membership.test_replay import scenario, digest; print(digest(scenario(21)))"
    expected = digest(scenario(21))
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected
