"""Sentences of Ongaro's thesis ("Consensus: Bridging Theory and Practice", 2014) and of
the paper's sections on membership and snapshots, each turned into a test: Pre-Vote and
check-quorum (9.6), ReadIndex (6.4), membership changes (4), learners, log compaction
and InstallSnapshot (paper section 7)."""

from __future__ import annotations

import pytest

from swarmnode.consensus.messages import Append, Heartbeat, SnapshotChunk, VoteRequest
from swarmnode.consensus.raft import NotLeader, ProposalDropped
from swarmnode.consensus.ready import Role
from swarmnode.consensus.records import ConfChange

from .network import Network, config

PREVOTE = config(pre_vote=True, check_quorum=True)


def leader_of(net: Network) -> str:
    (leader,) = [n for n, r in net.nodes.items() if r.role is Role.LEADER]
    return leader


# ---- 9.6 Preventing disruptions when a server rejoins the cluster -----------------------


def test_isolated_server_with_pre_vote_does_not_raise_its_term_nor_depose_the_leader():
    """9.6: "the Pre-Vote algorithm ... a candidate would first ask other servers whether
    its log was up-to-date enough to get their vote. Only if the candidate believed it
    could get votes from a majority of the cluster would it increment its term and start a
    normal election." An isolated server keeps its term, and when it rejoins, the leader
    keeps leading in the same term."""
    net = Network(["a", "b", "c"], PREVOTE)
    net.campaign("a")
    term = net.nodes["a"].term
    net.isolate("c")
    for _ in range(10):
        net.tick("c", 30)
        net.tick("a")
        net.tick("b")
    assert net.nodes["c"].term == term
    net.recover()
    net.tick("c", 30)
    net.tick("a")
    assert (leader_of(net), net.nodes["a"].term) == ("a", term)
    assert net.nodes["c"].lead == "a"


def test_without_pre_vote_a_rejoining_server_forces_the_leader_out():
    """9.6, the problem Pre-Vote solves: "a server that has been partitioned from the
    cluster ... will time out and start a new election ... it will increment its term ...
    When it rejoins, its term is larger, and the leader steps down." """
    net = Network(["a", "b", "c"], config(pre_vote=False, check_quorum=False))
    net.campaign("a")
    term = net.nodes["a"].term
    net.isolate("c")
    net.tick("c", 100)
    assert net.nodes["c"].term > term
    net.recover()
    net.tick("c", 30)
    assert net.nodes["a"].term > term, "the leader of that term was deposed"


def test_server_that_heard_from_a_leader_recently_ignores_vote_requests():
    """9.6: "if a server receives a RequestVote request within the minimum election
    timeout of hearing from a current leader, it does not update its term or grant its
    vote." """
    net = Network(["a", "b", "c"], PREVOTE)
    net.campaign("a")
    follower = net.nodes["b"]
    term = follower.term
    for pre in (False, True):
        follower.step(VoteRequest("c", "b", term + 1, 100, term, pre))
        assert net.process("b") == []
        assert (follower.term, follower.vote) == (term, "a")


def test_leader_that_cannot_reach_a_quorum_steps_down():
    """9.6: "a leader ... steps down if an election timeout elapses without a successful
    round of heartbeats to a majority of its cluster" (check-quorum)."""
    net = Network(["a", "b", "c"], PREVOTE)
    net.campaign("a")
    net.isolate("a")
    net.tick("a", PREVOTE.election_ticks_min)
    assert net.nodes["a"].role is Role.LEADER, "it heard from everyone in the last period"
    net.tick("a", PREVOTE.election_ticks_min)
    assert net.nodes["a"].role is Role.FOLLOWER
    assert net.nodes["a"].lead is None


def test_pre_candidate_that_would_lose_stays_in_its_term():
    """9.6: a pre-vote is refused to a server whose log is not up to date, and refusing
    it changes nothing; the server does not raise its term."""
    net = Network(["a", "b", "c"], PREVOTE)
    net.campaign("a")
    net.isolate("c")
    net.propose("a", b"x")
    net.recover()
    net.isolate("a")
    net.tick("b", 40)
    c = net.nodes["c"]
    term = c.term
    c.campaign()
    net.stabilize()
    assert c.role is not Role.LEADER and c.term == term


# ---- 6.4 Processing read-only queries more efficiently (ReadIndex) ----------------------


def test_read_index_waits_until_the_leader_has_committed_an_entry_of_its_term():
    """6.4: "If the leader has not yet marked an entry from its current term committed, it
    waits until it has done so." """
    net = Network(["a", "b", "c"], PREVOTE)
    net.drop_if = lambda m: isinstance(m, Append)
    net.campaign("a")
    leader = net.nodes["a"]
    leader.read_index(b"r1")
    assert _read_states(net, "a") == []
    net.recover()
    net.tick("a", 3)
    (answer,) = _read_states(net, "a")
    assert answer.context == b"r1" and answer.index == leader.log.committed


def test_read_index_is_confirmed_by_a_heartbeat_round_answered_by_a_majority():
    """6.4: "The leader ... saves its current commit index in a local variable readIndex
    ... The leader needs to make sure it hasn't been superseded by a newer leader of which
    it is unaware. It issues a new round of heartbeats and waits for their acknowledgments
    from a majority of the cluster." A leader cut off from the majority never answers."""
    net = Network(["a", "b", "c"], PREVOTE)
    net.campaign("a")
    net.propose("a", b"x")
    commit = net.nodes["a"].log.committed
    net.isolate("a")
    net.nodes["a"].read_index(b"cut-off")
    net.stabilize()
    assert _read_states(net, "a") == []
    net.recover()
    net.nodes["a"].read_index(b"ok")
    net.stabilize()
    beats = [m for m in net.sent if isinstance(m, Heartbeat) and m.read_seq > 0]
    assert {m.to for m in beats} == {"b", "c"}
    assert [(s.context, s.index) for s in _read_states(net, "a")] == [
        (b"cut-off", commit),
        (b"ok", commit),
    ]


def test_read_index_on_a_follower_asks_the_leader():
    """6.4.1: "a follower ... issues a request to the leader asking for the current
    readIndex. The leader ... sends its readIndex back to the follower"; the follower
    answers once its own state machine has applied that index."""
    net = Network(["a", "b", "c"], PREVOTE)
    net.campaign("a")
    index, _ = net.propose("a", b"x")
    net.nodes["b"].read_index(b"from-b")
    net.stabilize()
    (answer,) = _read_states(net, "b")
    assert (answer.context, answer.index) == (b"from-b", index)
    lonely = Network(["a", "b", "c"], PREVOTE)
    with pytest.raises(NotLeader):
        lonely.nodes["b"].read_index(b"no leader yet")


def test_single_voter_answers_reads_at_once():
    net = Network(["a"], PREVOTE)
    net.campaign("a")
    net.nodes["a"].read_index(b"solo")
    assert [s.context for s in _read_states(net, "a")] == [b"solo"]


def _read_states(net: Network, node: str) -> list:
    net.process(node)
    states, net.reads[node] = net.reads[node], []
    return states


# ---- 4 Cluster membership changes -------------------------------------------------------


def test_one_membership_change_at_a_time():
    """4.1: "the leader ... does not begin a new configuration change until the previous
    one has been committed"; and 4.1.x (the 2015 raft-dev correction): a new leader
    proposes none before it has committed an entry of its own term."""
    net = Network(["a", "b", "c", "d"], voters=["a", "b", "c"])
    net.drop_if = lambda m: isinstance(m, Append)
    net.campaign("a")
    leader = net.nodes["a"]
    with pytest.raises(ProposalDropped):
        leader.propose_conf_change(ConfChange("add_learner", "d"))
    net.recover()
    net.tick("a")
    leader.propose_conf_change(ConfChange("add_learner", "d"))
    with pytest.raises(ProposalDropped):
        leader.propose_conf_change(ConfChange("add_voter", "d"))
    net.stabilize()
    net.tick("a")
    leader.propose_conf_change(ConfChange("add_voter", "d"))
    net.stabilize()
    net.tick("a")
    assert leader.conf.voters == {"a", "b", "c", "d"}
    assert net.nodes["d"].conf.voters == {"a", "b", "c", "d"}


def test_learner_receives_committed_entries_but_never_votes_nor_counts():
    """Learners (non-voting members, thesis 4.2.1): they receive the log so they can be
    promoted without a long catch-up, but are not part of any quorum and never start an
    election."""
    net = Network(["a", "b", "c", "d"], voters=["a", "b", "c"])
    net.campaign("a")
    net.nodes["a"].propose_conf_change(ConfChange("add_learner", "d"))
    net.stabilize()
    net.tick("a")
    index, _ = net.propose("a", b"for the learner")
    net.tick("a")
    assert net.applied["d"][-1].index == index
    net.isolate("a")
    net.tick("d", 100)
    assert net.nodes["d"].role is Role.FOLLOWER
    net.recover()
    net.isolate("b")
    net.isolate("c")
    before = net.nodes["a"].log.committed
    net.propose("a", b"needs a voter")
    assert net.nodes["a"].log.committed == before, "a learner's ack does not commit"


def test_removed_leader_steps_down_once_the_remaining_voters_know_it():
    """4.2.2: "the leader steps down ... once the C_new entry is committed"; here it waits
    until a quorum of the remaining voters has learned the commit, so that they can elect
    a leader under the new configuration, then they do."""
    net = Network(["a", "b", "c"])
    net.campaign("a")
    net.tick("a")
    net.nodes["a"].propose_conf_change(ConfChange("remove", "a"))
    net.stabilize()
    with pytest.raises(NotLeader):
        net.nodes["a"].propose(b"late")
    net.tick("a")
    assert net.nodes["a"].role is Role.FOLLOWER
    assert net.nodes["b"].conf.voters == {"b", "c"}
    for _ in range(5):
        net.tick("b", 5)
        net.tick("c", 5)
    assert {leader_of(net)} <= {"b", "c"}
    net.tick("a", 100)
    assert net.nodes["a"].role is Role.FOLLOWER, "a removed server never campaigns"


def test_two_voters_can_remove_the_leader():
    """The case that needs the leader to wait: with voters {a, b}, b alone is a quorum of
    the new configuration only once it knows the removal is committed."""
    net = Network(["a", "b"])
    net.campaign("a")
    net.tick("a")
    net.nodes["a"].propose_conf_change(ConfChange("remove", "a"))
    net.stabilize()
    net.tick("a")
    net.tick("b", 40)
    assert leader_of(net) == "b"
    assert net.nodes["b"].conf.voters == {"b"}


# ---- 7 Log compaction -------------------------------------------------------------------


def test_leader_sends_a_snapshot_to_a_follower_behind_its_compacted_log():
    """7: "the leader must occasionally send snapshots to followers that lag behind. This
    happens when the leader has already discarded the next log entry that it needs to
    send to a follower." The snapshot goes in chunks ("Send the snapshot in chunks"),
    replaces the follower's log, and the follower then catches up from the log."""
    cfg = config(snapshot_chunk_bytes=7, snapshot_trailing_entries=0)
    net = Network(["a", "b", "c"], cfg)
    net.campaign("a")
    net.isolate("c")
    for i in range(10):
        net.propose("a", f"cmd{i}".encode())
    leader = net.nodes["a"]
    leader.compact(leader.log.applied, b"machine image of 30 bytes.....")
    net.stabilize()
    net.propose("a", b"after")
    net.recover()
    net.tick("a", 10)
    installed = net.installed["c"]
    raft_c = net.nodes["c"]
    chunks = [m for m in net.sent if isinstance(m, SnapshotChunk)]
    assert len(installed) == 1 and installed[0].data == b"machine image of 30 bytes....."
    assert raft_c.log.snapshot.meta.index == leader.log.snapshot.meta.index
    assert raft_c.log.last_index() == leader.log.last_index()
    assert net.applied["c"][-1].data == b"after"
    assert net.storages["c"].load().snapshot.data == installed[0].data
    assert len({m.offset for m in chunks}) == 5 and all(len(m.data) <= 7 for m in chunks)


def test_follower_that_already_holds_the_snapshots_last_entry_keeps_its_log():
    """7, InstallSnapshot receiver: "If existing log entry has same index and term as
    snapshot's last included entry, retain log entries following it and reply." """
    from swarmnode.consensus.messages import SnapshotResponse
    from swarmnode.consensus.records import SnapshotMeta

    net = Network(["a", "b", "c"])
    net.campaign("a")
    for i in range(3):
        net.propose("a", f"cmd{i}".encode())
    follower = net.nodes["b"]
    before = list(follower.log.entries)
    meta = SnapshotMeta(3, follower.log.term(3), follower.conf)
    follower.step(SnapshotChunk("a", "b", follower.term, meta, 0, 4, b"data"))
    (answer,) = net.process("b")
    assert isinstance(answer, SnapshotResponse) and answer.done
    assert follower.log.entries == before
    assert follower.log.snapshot.meta.index == 0
