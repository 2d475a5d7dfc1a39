"""Sentences of the Raft paper (Ongaro and Ousterhout, 2014), each turned into a test.

Quotes are from the extended version of "In Search of an Understandable
Consensus Algorithm"; section numbers are the paper's. Indexes here are one
higher than in the paper's figures, because every log starts with the group's
bootstrap entry (index 1, term 1).
"""

from __future__ import annotations

import random

import pytest

from swarmnode.consensus.messages import (
    Append,
    AppendResponse,
    Heartbeat,
    VoteRequest,
    VoteResponse,
)
from swarmnode.consensus.raft import Raft
from swarmnode.consensus.ready import Role
from swarmnode.consensus.records import Entry, EntryKind, HardState
from swarmnode.consensus.storage import MemoryStorage, bootstrap

from .network import CONFIG, Network, config, storage_with_log


def node(name: str = "a", voters: tuple[str, ...] = ("a", "b", "c"), terms=(), term=None) -> Raft:
    storage = storage_with_log(list(voters), list(terms), term) if terms or term else None
    if storage is None:
        storage = MemoryStorage()
        bootstrap(storage, list(voters))
    return Raft(name, CONFIG, storage, random.Random(name))


def drain(raft: Raft) -> list:
    """Carry out the pending Readies (storage is not needed here) and return the messages."""
    out = []
    while raft.has_ready():
        rd = raft.ready()
        out.extend(rd.messages)
        raft.advance(rd)
    return out


def elect(raft: Raft) -> None:
    """Make `raft` leader by granting it every vote."""
    raft.campaign()
    for msg in drain(raft):
        if isinstance(msg, VoteRequest):
            raft.step(VoteResponse(msg.to, raft.id, msg.term, False))
    assert raft.role is Role.LEADER
    drain(raft)


# ---- 5.2 Leader election ----------------------------------------------------------------


def test_follower_without_communication_for_an_election_timeout_starts_an_election():
    """5.2: "If a follower receives no communication over a period of time called the
    election timeout, then it assumes there is no viable leader and begins an election
    ... a follower increments its current term and transitions to candidate state. It then
    votes for itself and issues RequestVote RPCs in parallel to each of the other servers"."""
    raft = node()
    for _ in range(raft.randomized_timeout - 1):
        raft.tick()
    assert raft.role is Role.FOLLOWER and raft.term == 1
    raft.tick()
    assert (raft.role, raft.term, raft.vote) == (Role.CANDIDATE, 2, "a")
    rd = raft.ready()
    assert rd.hard_state == HardState(2, "a", 1), "term and vote persist with the requests"
    requests = sorted((m.to, m.term, m.last_index, m.last_term) for m in rd.messages)
    assert requests == [("b", 2, 1, 1), ("c", 2, 1, 1)]


@pytest.mark.parametrize(
    ("size", "answers", "role"),
    [
        (1, {}, Role.LEADER),
        (3, {"n1": True}, Role.LEADER),
        (3, {"n1": False}, Role.CANDIDATE),
        (3, {"n1": False, "n2": False}, Role.FOLLOWER),
        (5, {"n1": True}, Role.CANDIDATE),
        (5, {"n1": True, "n2": True}, Role.LEADER),
        (5, {"n1": True, "n2": False, "n3": False}, Role.CANDIDATE),
        (5, {"n1": False, "n2": False, "n3": False}, Role.FOLLOWER),
    ],
)
def test_candidate_with_votes_from_a_majority_becomes_leader(size, answers, role):
    """5.2: "A candidate wins an election if it receives votes from a majority of the
    servers in the full cluster for the same term." A majority against it ends its
    candidacy."""
    voters = tuple(f"n{i}" for i in range(size))
    raft = node("n0", voters)
    raft.campaign()
    drain(raft)
    for voter, granted in answers.items():
        raft.step(VoteResponse(voter, "n0", raft.term, not granted))
    assert raft.role is role


def test_each_server_votes_for_at_most_one_candidate_per_term_first_come_first_served():
    """5.2: "Each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis." The vote is durable: a restarted server keeps it."""
    storage = MemoryStorage()
    bootstrap(storage, ["a", "b", "c"])
    raft = Raft("a", CONFIG, storage, random.Random(1))

    def ask(raft: Raft, candidate: str) -> bool:
        raft.step(VoteRequest(candidate, "a", 2, 1, 1))
        out = []
        while raft.has_ready():
            rd = raft.ready()
            storage.persist(rd)
            out.extend(rd.messages)
            raft.advance(rd)
        (answer,) = out
        return not answer.reject

    assert ask(raft, "b") is True
    assert ask(raft, "c") is False
    assert ask(raft, "b") is True, "a repeated request from the same candidate is granted"
    restarted = Raft("a", CONFIG, storage, random.Random(2))
    assert ask(restarted, "c") is False


def test_candidate_that_hears_from_a_leader_of_its_term_returns_to_follower():
    """5.2: "If the leader's term (included in its RPC) is at least as large as the
    candidate's current term, then the candidate recognizes the leader as legitimate and
    returns to follower state. If the term in the RPC is smaller than the candidate's
    current term, then the candidate rejects the RPC and continues in candidate state."""
    raft = node()
    raft.campaign()
    drain(raft)
    raft.step(Heartbeat("b", "a", 1, 1))
    assert raft.role is Role.CANDIDATE
    raft.step(Append("b", "a", 2, 1, 1, 1))
    assert (raft.role, raft.lead, raft.term) == (Role.FOLLOWER, "b", 2)


def test_leader_sends_heartbeats_to_all_followers():
    """5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log
    entries) to all followers in order to maintain their authority." """
    raft = node()
    elect(raft)
    raft.tick()
    beats = [m for m in drain(raft) if isinstance(m, Heartbeat)]
    assert sorted(m.to for m in beats) == ["b", "c"]
    assert all(m.term == raft.term for m in beats)


def test_election_timeouts_are_chosen_randomly_from_the_configured_range():
    """5.2: "Raft uses randomized election timeouts to ensure that split votes are rare
    ... election timeouts are chosen randomly from a fixed interval"; a new timeout is
    drawn at each election."""
    seen = set()
    for seed in range(300):
        raft = Raft("a", CONFIG, MemoryStorage(), random.Random(seed))
        seen.add(raft.randomized_timeout)
    assert seen == set(range(CONFIG.election_ticks_min, CONFIG.election_ticks_max + 1))
    raft = node()
    drawn = set()
    for _ in range(40):
        raft.campaign()
        drawn.add(raft.randomized_timeout)
    assert len(drawn) > 3


def test_servers_only_count_votes_cast_in_the_candidates_term():
    """5.1: "Current terms are exchanged whenever servers communicate"; a vote granted in
    an earlier term is stale and ignored."""
    raft = node()
    raft.campaign()
    raft.campaign()
    drain(raft)
    raft.step(VoteResponse("b", "a", raft.term - 1, False))
    assert raft.role is Role.CANDIDATE


# ---- 5.1 Terms --------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE, Role.LEADER])
def test_server_with_a_smaller_term_adopts_the_larger_and_reverts_to_follower(role):
    """5.1: "if one server's current term is smaller than the other's, then it updates its
    current term to the larger value. If a candidate or leader discovers that its term is
    out of date, it immediately reverts to follower state." """
    raft = node()
    if role is Role.CANDIDATE:
        raft.campaign()
    elif role is Role.LEADER:
        elect(raft)
    drain(raft)
    term = raft.term
    raft.step(AppendResponse("b", "a", term + 5, 0))
    assert (raft.role, raft.term, raft.vote) == (Role.FOLLOWER, term + 5, None)


def test_request_with_a_stale_term_is_rejected():
    """5.1: "If a server receives a request with a stale term number, it rejects the
    request." The log is not touched; with Pre-Vote the answer carries the newer term,
    which makes the stale leader step down."""
    storage = storage_with_log(["a", "b"], [2], 3)
    raft = Raft("a", config(pre_vote=True), storage, random.Random(0))
    before = list(raft.log.entries)
    raft.step(Append("b", "a", 2, 2, 2, 2, (Entry(3, 2, EntryKind.NORMAL, b"x"),)))
    assert raft.log.entries == before
    (answer,) = drain(raft)
    assert isinstance(answer, AppendResponse) and answer.term == 3
    stale_leader = node("b", ("a", "b"))
    elect(stale_leader)
    assert stale_leader.term == 2
    stale_leader.step(answer)
    assert (stale_leader.role, stale_leader.term) == (Role.FOLLOWER, 3)


# ---- 5.3 Log replication ----------------------------------------------------------------


def test_leader_appends_a_command_and_sends_it_to_every_follower():
    """5.3: "The leader appends the command to its log as a new entry, then issues
    AppendEntries RPCs in parallel to each of the other servers to replicate the entry."
    "When sending an AppendEntries RPC, the leader includes the index and term of the
    entry in its log that immediately precedes the new entries." """
    net = Network(["a", "b", "c"])
    net.campaign("a")
    leader = net.nodes["a"]
    index, term = leader.propose(b"cmd")
    assert leader.log.entry(index) == Entry(index, term, EntryKind.NORMAL, b"cmd")
    rd = leader.ready()
    appends = [m for m in rd.messages if isinstance(m, Append)]
    assert sorted(m.to for m in appends) == ["b", "c"]
    for m in appends:
        assert (m.prev_index, m.prev_term) == (index - 1, leader.log.term(index - 1))
        assert [e.data for e in m.entries] == [b"cmd"]
    leader.advance(rd)


@pytest.mark.parametrize(
    ("size", "acks", "committed"),
    [(3, 0, False), (3, 1, True), (5, 1, False), (5, 2, True), (5, 4, True)],
)
def test_entry_is_committed_once_the_leader_replicated_it_on_a_majority(size, acks, committed):
    """5.3: "A log entry is committed once the leader that created the entry has
    replicated it on a majority of the servers." """
    voters = tuple(f"n{i}" for i in range(size))
    leader = node("n0", voters)
    elect(leader)
    for follower in voters[1:]:
        leader.step(AppendResponse(follower, "n0", leader.term, leader.log.last_index()))
    drain(leader)
    index, _ = leader.propose(b"cmd")
    drain(leader)
    for follower in voters[1 : 1 + acks]:
        leader.step(AppendResponse(follower, "n0", leader.term, index))
    assert (leader.log.committed >= index) is committed


def test_leader_sends_its_commit_index_and_followers_apply_committed_entries():
    """5.3: "The leader keeps track of the highest index it knows to be committed, and it
    includes that index in future AppendEntries RPCs (including heartbeats) so that the
    other servers eventually find out. Once a follower learns that a log entry is
    committed, it applies the entry to its local state machine (in log order)." """
    net = Network(["a", "b", "c"])
    net.campaign("a")
    index, _ = net.propose("a", b"cmd")
    net.tick("a")
    for name in ("b", "c"):
        applied = net.applied[name]
        assert [e.index for e in applied] == list(range(1, index + 1))
        assert applied[-1].data == b"cmd"
    beats = [m for m in net.sent if isinstance(m, Heartbeat)]
    assert beats and all(m.commit == index for m in beats)


def test_follower_rejects_append_entries_whose_previous_entry_does_not_match():
    """5.3: "If the follower does not find an entry in its log with the same index and
    term, then it refuses the new entries." The refusal says where its log may match, so
    the leader can skip a whole conflicting term at once."""
    follower = node("b", terms=[2, 2, 3], term=3)
    follower.step(Append("a", "b", 4, 4, 4, 1, (Entry(5, 4, EntryKind.NORMAL, b"x"),)))
    (answer,) = drain(follower)
    assert answer.reject and answer.index == 4
    assert (answer.hint_index, answer.hint_term) == (4, 3)
    assert follower.log.last_index() == 4
    follower.step(Append("a", "b", 4, 3, 2, 1, (Entry(4, 4, EntryKind.NORMAL, b"x"),)))
    (answer,) = drain(follower)
    assert not answer.reject and answer.index == 4
    assert [e.term for e in follower.log.entries] == [1, 2, 2, 4]


def test_conflicting_entry_and_all_that_follow_it_are_deleted():
    """Figure 2, AppendEntries receiver: "If an existing entry conflicts with a new one
    (same index but different terms), delete the existing entry and all that follow it";
    entries that match are kept, and a stale append deletes nothing."""
    follower = node("b", terms=[2, 2, 2, 2], term=3)
    follower.step(Append("a", "b", 3, 2, 2, 1, (Entry(3, 2, EntryKind.NORMAL, b"e3t2"),)))
    assert [e.term for e in follower.log.entries] == [1, 2, 2, 2, 2]
    follower.step(Append("a", "b", 3, 2, 2, 1, (Entry(3, 3, EntryKind.NORMAL, b"new"),)))
    assert [e.term for e in follower.log.entries] == [1, 2, 3]


FIGURE_7_LEADER = [1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE_7_FOLLOWERS = {
    "a": [1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 4],
    "c": [1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 4, 4, 4, 4],
    "f": [1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIGURE_7_FOLLOWERS))
def test_leader_forces_each_follower_log_of_figure_7_to_duplicate_its_own(case):
    """5.3: "the leader handles inconsistencies by forcing the followers' logs to duplicate
    its own. This means that conflicting entries in follower logs will be overwritten with
    entries from the leader's log." Figure 7's follower logs (a) to (f), under the
    leader of term 8."""
    storages = {
        "L": storage_with_log(["L", "F", "X"], FIGURE_7_LEADER, 7),
        "X": storage_with_log(["L", "F", "X"], FIGURE_7_LEADER, 7),
        "F": storage_with_log(["L", "F", "X"], FIGURE_7_FOLLOWERS[case], 7),
    }
    net = Network(["L", "F", "X"], storages=storages)
    net.campaign("L")
    assert (net.nodes["L"].role, net.nodes["L"].term) == (Role.LEADER, 8)
    net.tick("L")
    leader_log = [(e.index, e.term, e.data) for e in net.nodes["L"].log.entries]
    assert [(e.index, e.term, e.data) for e in net.nodes["F"].log.entries] == leader_log


def test_leader_never_overwrites_or_deletes_entries_in_its_own_log():
    """Figure 3, Leader Append-Only: "a leader never overwrites or deletes entries in its
    log; it only appends new entries." Rejections and stale appends leave it alone."""
    net = Network(["a", "b", "c"])
    net.campaign("a")
    net.isolate("a")
    leader = net.nodes["a"]
    net.propose("a", b"x")
    net.propose("a", b"y")
    before = list(leader.log.entries)
    leader.step(AppendResponse("b", "a", leader.term, 2, True, 1, 1))
    leader.step(Append("c", "a", leader.term - 1, 1, 1, 1, (Entry(2, 1, EntryKind.NORMAL, b"z"),)))
    net.stabilize()
    assert leader.log.entries[: len(before)] == before


# ---- 5.4 Safety -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cand_last_term", "cand_last_index", "granted"),
    [
        (3, 4, True),
        (3, 5, True),
        (3, 3, False),
        (2, 9, False),
        (4, 2, True),
    ],
)
def test_voter_denies_its_vote_to_a_candidate_with_a_less_up_to_date_log(
    cand_last_term, cand_last_index, granted
):
    """5.4.1: "the voter denies its vote if its own log is more up-to-date than that of
    the candidate ... If the logs have last entries with different terms, then the log
    with the later term is more up-to-date. If the logs end with the same term, then
    whichever log is longer is more up-to-date." The voter's log ends at (index 4, term
    3)."""
    voter = node("b", terms=[2, 3, 3], term=3)
    voter.step(VoteRequest("a", "b", 5, cand_last_index, cand_last_term))
    (answer,) = drain(voter)
    assert answer.reject is not granted


def test_figure_8_entries_of_earlier_terms_are_not_committed_by_counting_replicas():
    """5.4.2 and Figure 8: "Raft never commits log entries from previous terms by counting
    replicas. Only log entries from the leader's current term are committed by counting
    replicas; once an entry from the current term has been committed in this way, then all
    prior entries are committed indirectly."

    (a) S1 led term 2 and put entry 2 (term 2) on S2 only; (b) S5 led term 3 and wrote
    its own entry 2 (term 3) alone; (c) S1 leads term 4 and gets entry 2 onto S3: on a
    majority, but not committed, since (d) S5 can still be elected and overwrite it;
    (e) once S1's term-4 entry is on a majority, everything before it is committed and S5
    can no longer win."""
    voters = ["s1", "s2", "s3", "s4", "s5"]
    storages = {
        "s1": storage_with_log(voters, [2], 3),
        "s2": storage_with_log(voters, [2], 3),
        "s3": storage_with_log(voters, [], 3),
        "s4": storage_with_log(voters, [], 3),
        "s5": storage_with_log(voters, [3], 3),
    }
    net = Network(voters, storages=storages)
    net.drop_if = lambda m: isinstance(m, Append | Heartbeat)
    net.campaign("s1")
    s1 = net.nodes["s1"]
    assert (s1.role, s1.term) == (Role.LEADER, 4)
    s3 = net.nodes["s3"]
    s3.step(Append("s1", "s3", 4, 1, 1, 1, (s1.log.entry(2),)))
    (ack,) = net.process("s3")
    assert [e.term for e in s3.log.entries] == [1, 2]
    s1.step(ack)
    s1.step(AppendResponse("s2", "s1", 4, 2))
    net.process("s1")
    assert s1.log.committed == 1, "entry 2 is on s1, s2, s3 but from term 2: not committed"

    # (d) Had S1 crashed now, S5 could win and overwrite entry 2 on the majority.
    branch = Network(voters, storages={n: net.storages[n].copy() for n in voters})
    branch.isolate("s1")
    for _ in range(3):
        if branch.nodes["s5"].role is not Role.LEADER:
            branch.campaign("s5")
    assert branch.nodes["s5"].role is Role.LEADER
    branch.tick("s5")
    assert [branch.nodes[n].log.term(2) for n in ("s2", "s3", "s4")] == [3, 3, 3]

    # (e) S1 puts its term-4 entry on S2 and S3: entry 2 is committed with it.
    net.recover()
    net.cut("s1", "s4")
    net.cut("s1", "s5")
    net.tick("s1", 3)
    assert s1.log.committed == 3 and s1.log.term(3) == 4
    net.isolate("s1")
    for _ in range(3):
        net.campaign("s5")
    assert net.nodes["s5"].role is not Role.LEADER
