"""One seed replays one run exactly, in this process or another, and failures say how."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from swarmnode.sim.__main__ import _parser, _report, main
from swarmnode.sim.run import RunResult, RunSpec, run

ROOT = Path(__file__).resolve().parents[2]
SPEC = RunSpec(scenario="mixed", seed=11, nodes=4, duration=6.0)


def test_the_same_seed_gives_the_same_history_and_the_same_final_digests():
    first, second = run(SPEC), run(SPEC)
    assert first.ok, first.violations
    assert first.history.lines() == second.history.lines()
    assert first.digests == second.digests
    assert first.fingerprint() == second.fingerprint()
    assert first.nemesis_log == second.nemesis_log
    assert first.net.messages == second.net.messages


def test_another_seed_gives_another_run():
    other = run(RunSpec(**{**SPEC.__dict__, "seed": 12}))
    assert other.fingerprint() != run(SPEC).fingerprint()


def test_a_run_replays_in_processes_with_other_hash_seeds():
    code = (
        "from swarmnode.sim.run import RunSpec, run; "
        "print(run(RunSpec(scenario='mixed', seed=11, nodes=4, duration=6.0)).fingerprint())"
    )
    expected = run(SPEC).fingerprint()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected


def test_the_replay_command_parses_back_into_the_same_run():
    spec = RunSpec(
        scenario="partition", seed=1234, nodes=10, profile="lan", rate=5.0, consensus_clients=3
    )
    command = spec.command()
    assert command.startswith("python -m swarmnode.sim --scenario partition --seed 1234 --nodes 10")
    args = vars(_parser().parse_args(shlex.split(command)[3:]))
    assert RunSpec(**{k: v for k, v in args.items() if k in spec.__dict__}) == spec


def test_a_failed_run_prints_its_violations_and_the_line_that_replays_it(capsys):
    result = RunResult(RunSpec(scenario="partition", seed=1234, nodes=10))
    result.violations.append("n3 r1: acknowledged write op 7 is lost (no register)")
    _report(result, verbose=False)
    out = capsys.readouterr().out
    assert "FAIL partition seed=1234 nodes=10" in out
    assert "violation: n3 r1: acknowledged write op 7 is lost" in out
    assert "replay: python -m swarmnode.sim --scenario partition --seed 1234 --nodes 10" in out


def test_the_command_line_runs_a_batch_of_seeds_and_exits_zero_when_all_pass(capsys):
    code = main(
        ["--scenario", "calm", "--seed", "5", "--seeds", "2", "--nodes", "3", "--duration", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("PASS calm") == 2 and "2/2 seeds passed" in out
