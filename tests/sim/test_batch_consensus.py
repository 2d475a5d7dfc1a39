"""The consensus group inside whole simulated nodes: clients run cas, linearizable reads,
claims and conflicting writes through the service layer while the nemesis crashes,
partitions, slows and skews; Raft's safety oracles watch every step of every node. The
CAS history goes through the linearizability checker, claims must never overlap, every
conflict must be decided everywhere. Longer batches: `simulations/batch.py
--consensus-clients 4`. A failure names its replay command.

The last tests break the system on purpose and expect the run to fail: each judge is
wired in and catches what it exists for.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarmnode.consensus.group import ConsensusGroup
from swarmnode.consensus.leases import LeaseKeeper
from swarmnode.consensus.machine import LeaseGranted
from swarmnode.consensus.records import HardState
from swarmnode.consensus.storage import LmdbStorage
from swarmnode.sim.run import RunSpec, run

SHORT = {"duration": 10.0, "consensus_clients": 4}
CASES = [
    RunSpec(scenario="crash", seed=1, nodes=5, **SHORT),
    RunSpec(scenario="partition", seed=2, nodes=5, **SHORT),
    RunSpec(scenario="mixed", seed=3, nodes=4, **SHORT),
    RunSpec(scenario="skew", seed=4, nodes=3, **SHORT),
    RunSpec(scenario="slow", seed=5, nodes=5, **SHORT),
]


@pytest.mark.parametrize("spec", CASES, ids=lambda s: s.command())
def test_cas_reads_claims_and_decisions_hold_up_under_faults(spec):
    result = run(spec)
    details = "\n".join(result.violations[:10])
    assert result.ok, f"{result.summary()}\n{details}\nreplay: {spec.command()}"
    c = result.consensus
    assert c["cas_ok"] > 0 and c["claim_holds"] > 0 and c["put"] > 0, c
    assert c["checked_ops"] >= c["cas_ok"], "the checker saw the history"


def test_a_consensus_run_replays_exactly():
    spec = CASES[0]
    first, second = run(spec), run(spec)
    assert first.consensus_history and first.consensus_history == second.consensus_history
    assert first.fingerprint() == second.fingerprint()


def _fails(spec: RunSpec, monkeypatch, where: str, attr: str, broken) -> list[str]:
    monkeypatch.setattr(where, attr, broken)
    result = run(spec)
    assert not result.ok, "the broken system passed"
    return result.violations


def test_a_leader_that_frees_leases_at_once_is_caught_by_the_claim_check(monkeypatch):
    def track_expired(self: LeaseKeeper, now: float, lease: LeaseGranted) -> None:
        self._schedule(now, lease)

    violations = _fails(
        RunSpec(scenario="calm", seed=0, nodes=3, duration=6.0, consensus_clients=6),
        monkeypatch,
        LeaseKeeper,
        "_track",
        track_expired,
    )
    assert any(v.startswith("claim ") and "holds" in v for v in violations), violations


def test_reads_from_local_state_without_read_index_are_caught_by_the_checker(monkeypatch):
    def local_read(self: ConsensusGroup, now: float, token: int, ns: str, key: str) -> None:
        self._results.append((token, self.machine.read(ns, key)))

    violations = _fails(
        RunSpec(scenario="crash", seed=0, nodes=5, duration=10.0, consensus_clients=6),
        monkeypatch,
        ConsensusGroup,
        "read",
        local_read,
    )
    assert any(v.startswith("CAS history is not-linearizable") for v in violations), violations


def test_a_vote_that_does_not_survive_a_crash_is_caught_by_the_raft_oracles(monkeypatch):
    persist = LmdbStorage.persist

    def forget_votes(self: LmdbStorage, rd) -> None:
        if rd.hard_state is not None:
            rd = replace(rd, hard_state=HardState(rd.hard_state.term, None, rd.hard_state.commit))
        persist(self, rd)

    violations = _fails(
        RunSpec(scenario="crash", seed=0, nodes=5, duration=10.0),
        monkeypatch,
        LmdbStorage,
        "persist",
        forget_votes,
    )
    assert any(v.startswith("Raft safety:") and "after restart" in v for v in violations)
