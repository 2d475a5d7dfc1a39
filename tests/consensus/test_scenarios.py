"""Scenarios on the timed simulator: crashes, partitions, rejoining nodes, flapping links,
voter replacement, snapshot transfer, leases across a leader change, LMDB crashes. Raft's
safety properties are checked after every step of every scenario (`RaftOracles`)."""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace
from typing import Any

from swarmnode.consensus import machine as m
from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.messages import SnapshotChunk
from swarmnode.consensus.oracles import RaftOracles
from swarmnode.consensus.raft import NotLeader, Raft
from swarmnode.consensus.ready import Role
from swarmnode.consensus.records import ConfChange
from swarmnode.consensus.simnet import SimCluster
from swarmnode.consensus.simworkload import Workload, WorkloadConfig
from swarmnode.consensus.storage import LmdbStorage, bootstrap

LOCAL = RaftConfig.local()
IDS = [f"n{i}" for i in range(5)]


def cluster(ids=IDS, seed=1, **kwargs: Any) -> SimCluster:
    kwargs.setdefault("config", LOCAL)
    c = SimCluster(ids, seed=seed, oracles=RaftOracles(), **kwargs)
    assert c.run_until_true(lambda: c.leader() is not None, 3_000)
    return c


def commit(c: SimCluster, data: bytes, timeout_ms: float = 2_000) -> dict:
    """Propose on the leader and wait for the result."""
    answers: list = []
    assert c.run_until_true(lambda: c.leader() is not None, timeout_ms)
    leader = c.leader()
    assert leader is not None
    c.propose(leader, data, answers.append)
    assert c.run_until_true(lambda: bool(answers), timeout_ms), "the proposal never came back"
    assert answers[0] is not None, "the proposal was lost"
    return answers[0]


def incr(c: SimCluster, key: str, expected: Any) -> dict:
    return commit(c, m.cas("ns", key, expected, (0 if expected is m.ABSENT else expected) + 1))


def test_a_crashed_leader_is_replaced_and_nothing_committed_is_lost():
    c = cluster()
    for i in range(5):
        assert incr(c, "x", m.ABSENT if i == 0 else i)["ok"]
    old = c.leader()
    old_term = c.nodes[old].raft.term
    c.crash(old)
    crashed_at = c.now_ms
    assert c.run_until_true(lambda: c.leader() not in (None, old), 2_000)
    assert c.now_ms - crashed_at < 1_000
    new = c.leader()
    assert c.nodes[new].raft.term > old_term
    assert incr(c, "x", 5)["ok"]
    c.restart(old)
    assert c.run_until_true(lambda: c.nodes[old].machine.read("ns", "x") == 6, 2_000)
    c.close()


def test_majority_side_of_a_partition_goes_on_and_the_minority_cannot_commit():
    c = cluster()
    leader = c.leader()
    minority = [leader, next(n for n in IDS if n != leader)]
    majority = [n for n in IDS if n not in minority]
    c.partition(minority, majority)
    lost: list = []
    c.propose(leader, m.cas("ns", "x", m.ABSENT, "minority"), lost.append)
    assert c.run_until_true(lambda: c.leader() in majority, 2_000)
    assert incr(c, "x", m.ABSENT)["ok"]
    c.run_for(500)
    assert c.nodes[leader].raft.role is not Role.LEADER, "check-quorum made it step down"
    assert lost == [] or lost == [None]
    c.heal()
    assert c.run_until_true(lambda: c.nodes[leader].machine.read("ns", "x") == 1, 2_000)
    assert c.run_until_true(lambda: lost == [None], 2_000), "the minority's entry was dropped"
    c.close()


def test_leader_on_the_majority_side_keeps_its_term_and_the_minority_cannot_elect():
    c = cluster()
    leader = c.leader()
    term = c.nodes[leader].raft.term
    minority = [n for n in IDS if n != leader][:2]
    c.partition([n for n in IDS if n not in minority], minority)
    c.run_for(3_000)
    assert c.leader() == leader and c.nodes[leader].raft.term == term
    assert all(c.nodes[n].raft.term == term for n in minority), "Pre-Vote kept their terms"
    assert incr(c, "x", m.ABSENT)["ok"]
    c.heal()
    c.run_for(1_000)
    assert c.leader() == leader and c.nodes[leader].raft.term == term
    c.close()


def test_an_isolated_node_rejoining_does_not_depose_a_healthy_leader():
    """Pre-Vote and check-quorum: the cut-off node cannot win a pre-vote, so its term does
    not grow, and when it is back the followers, hearing from their leader, ignore it."""
    for seed in range(1, 6):
        c = cluster(seed=seed)
        leader = c.leader()
        term = c.nodes[leader].raft.term
        loner = next(n for n in IDS if n != leader)
        c.isolate(loner)
        c.run_for(5_000)
        c.heal()
        c.run_for(2_000)
        assert (c.leader(), c.nodes[leader].raft.term) == (leader, term), f"seed {seed}"
        assert c.nodes[loner].raft.lead == leader
        c.close()


def test_a_flapping_link_costs_no_leadership_and_no_progress():
    c = cluster()
    leader = c.leader()
    term = c.nodes[leader].raft.term
    peer = next(n for n in IDS if n != leader)
    for k in range(100):
        c.schedule(k * 30.0, c.cut, leader, peer)
        c.schedule(k * 30.0 + 15.0, c.heal)
    value = m.ABSENT
    for _ in range(20):
        assert incr(c, "x", value)["ok"]
        value = 1 if value is m.ABSENT else value + 1
        c.run_for(100)
    assert c.leader() == leader and c.nodes[leader].raft.term == term
    c.close()


def test_a_dead_voter_is_replaced_by_a_learner_under_the_voter_policy():
    cfg = replace(LOCAL, voter_dead_time=1.0)
    ids = [f"n{i}" for i in range(7)]
    c = cluster(ids, config=cfg, voters=ids[:5])
    for learner in ids[5:]:
        assert c.run_until_true(lambda: not c.change_pending(), 2_000)
        change = ConfChange("add_learner", learner)
        c.step_node(c.leader(), lambda r, change=change: r.propose_conf_change(change))
    workload = Workload(c, random.Random(3), WorkloadConfig(autopilot=True, clients=2))
    workload.start()
    victim = next(n for n in ids[:5] if n != c.leader())
    c.crash(victim)
    c.run_for(1_000)
    assert victim in _conf(c).voters, "not dead long enough yet"
    assert c.run_until_true(lambda: victim not in _conf(c).members(), 8_000)
    workload.stop()
    conf = _conf(c)
    assert len(conf.voters) == 5 and conf.voters & set(ids[5:])
    c.close()


def _conf(c: SimCluster):
    return c.leader_raft().conf


def test_a_follower_behind_the_compacted_log_gets_the_snapshot_in_chunks():
    cfg = replace(
        LOCAL, snapshot_threshold=20, snapshot_trailing_entries=5, snapshot_chunk_bytes=16
    )
    c = cluster(config=cfg)
    chunks: list[SnapshotChunk] = []

    def watch(_node: str, event: str, detail: Any) -> None:
        if event == "send" and isinstance(detail, SnapshotChunk):
            chunks.append(detail)

    c.listeners.append(watch)
    laggard = next(n for n in IDS if n != c.leader())
    c.crash(laggard)
    for i in range(60):
        assert incr(c, f"k{i % 7}", m.ABSENT if i < 7 else i // 7)["ok"]
    leader = c.nodes[c.leader()].raft
    assert leader.log.first_index() > 2, "the leader compacted its log"
    c.restart(laggard)
    assert c.run_until_true(
        lambda: c.nodes[laggard].raft.log.applied == leader.log.committed, 3_000
    )
    assert c.nodes[laggard].raft.log.snapshot.meta.index > 0
    assert len({m.offset for m in chunks if m.to == laggard}) > 1
    assert c.nodes[laggard].machine.snapshot()[2:] == c.nodes[c.leader()].machine.snapshot()[2:]
    c.close()


def test_a_lease_outlives_a_leader_change_and_lapses_only_after_its_full_length():
    """A client holds a 1 s lease; the leader that granted it crashes at once. The new
    leader counts the lease as renewed at its election, so no other client gets the key
    before the first client's lease ends (counted from when it asked), and the key is
    freed a lease after the election."""
    c = cluster()
    lease_ms = 1_000
    asked = c.now_ms
    granted = commit(c, m.claim("t", "job", "alice", lease_ms))
    assert granted["ok"]
    c.crash(c.leader())
    bob_got: list[float] = []

    def try_bob() -> None:
        leader = c.leader()
        if leader is not None and not bob_got:

            def answer(result: dict | None) -> None:
                if result and result["ok"]:
                    bob_got.append(c.now_ms)

            with contextlib.suppress(NotLeader):
                c.propose(leader, m.claim("t", "job", "bob", lease_ms), answer)
        if not bob_got:
            c.schedule(20.0, try_bob)

    try_bob()
    assert c.run_until_true(lambda: bool(bob_got), 5_000)
    assert bob_got[0] >= asked + lease_ms
    c.close()


def test_lmdb_storage_survives_crashes_during_a_workload():
    """Nodes on LMDB crash (their Raft and machine dropped, the environment closed) and
    come back from what LMDB kept, with writes that take time to become durable."""
    from swarmnode.consensus.chaos import ChaosOptions, run

    for seed in (11, 12):
        options = ChaosOptions(
            nodes=3, fault_ms=1_500, after_heal_ms=300, storage="lmdb", disk_ms=1.0
        )
        result = run(seed, options)
        assert result.ok, f"{result.error}\nreplay: {result.replay(options)}"


def test_a_raft_rebuilt_from_fsynced_lmdb_has_the_same_term_vote_and_log(tmp_path):
    storage = LmdbStorage(tmp_path / "raft")
    bootstrap(storage, ["a", "b", "c"])
    raft = Raft("a", replace(LOCAL, pre_vote=False), storage, random.Random(1))
    raft.campaign()
    while raft.has_ready():
        rd = raft.ready()
        storage.persist(rd)
        raft.advance(rd)
    before = (raft.term, raft.vote, raft.log.committed, list(raft.log.entries))
    storage.close()
    again = Raft("a", LOCAL, LmdbStorage(tmp_path / "raft"), random.Random(2))
    assert (again.term, again.vote, again.log.committed, list(again.log.entries)) == before
    assert before[:2] == (2, "a")
