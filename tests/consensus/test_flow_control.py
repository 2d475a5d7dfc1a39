"""Flow control, batching and the bounds that keep a node's memory in check."""

from __future__ import annotations

import random

import pytest

from swarmnode.consensus.messages import (
    Append,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    SnapshotChunk,
)
from swarmnode.consensus.progress import ProgressState
from swarmnode.consensus.raft import ProposalDropped, Raft
from swarmnode.consensus.records import ConfState, SnapshotMeta
from swarmnode.consensus.storage import MemoryStorage, bootstrap

from .network import Network, config
from .test_paper import drain, elect, node


def replicating_leader(**changes: object) -> Raft:
    """A leader of {a, b, c} whose follower b is in replicate state."""
    storage = MemoryStorage()
    bootstrap(storage, ["a", "b", "c"])
    leader = Raft("a", config(**changes), storage, random.Random(0))
    elect(leader)
    leader.step(AppendResponse("b", "a", leader.term, leader.log.last_index()))
    drain(leader)
    assert leader.prs["b"].state is ProgressState.REPLICATE
    return leader


def appends_to(msgs: list, to: str) -> list[Append]:
    return [m for m in msgs if isinstance(m, Append) and m.to == to]


def test_a_replicating_follower_gets_at_most_max_inflight_unacknowledged_appends():
    leader = replicating_leader(max_inflight_appends=3, max_append_entries=1)
    for i in range(10):
        leader.propose(f"cmd{i}".encode())
    sent = appends_to(drain(leader), "b")
    assert len([m for m in sent if m.entries]) == 3
    leader.step(AppendResponse("b", "a", leader.term, sent[0].entries[-1].index))
    more = [m for m in appends_to(drain(leader), "b") if m.entries]
    assert len(more) == 1, "one acknowledgement frees one slot"


def batches(proposals: list[bytes], **changes: object) -> list[int]:
    """Entries per append that a probed follower gets, acknowledging each, once it answers
    a heartbeat after `proposals` piled up while it was silent."""
    storage = MemoryStorage()
    bootstrap(storage, ["a", "b", "c"])
    leader = Raft("a", config(**changes), storage, random.Random(0))
    elect(leader)
    for data in proposals:
        leader.propose(data)
    drain(leader)
    leader.step(HeartbeatResponse("c", "a", leader.term))
    sizes = []
    while sent := [m for m in appends_to(drain(leader), "c") if m.entries]:
        sizes += [len(m.entries) for m in sent]
        leader.step(AppendResponse("c", "a", leader.term, sent[-1].entries[-1].index))
    return sizes


def test_appends_are_batched_by_count_and_by_bytes():
    """The leader's no-op (16 bytes counted) comes first, then the proposals."""
    assert batches([b"x" * 10] * 10, max_append_entries=4) == [4, 4, 3]
    assert batches([b"y" * 40] * 6, max_append_bytes=120) == [2, 2, 2, 1]
    assert batches([b"z" * 1000] * 3, max_append_bytes=100) == [1, 1, 1, 1], (
        "an entry larger than the bound still goes, alone"
    )


def test_a_probed_follower_gets_one_append_per_heartbeat_response():
    leader = node("a")
    elect(leader)
    drain(leader)
    assert leader.prs["c"].state is ProgressState.PROBE
    for i in range(5):
        leader.propose(f"cmd{i}".encode())
    assert appends_to(drain(leader), "c") == [], "the probe sent at election is unanswered"
    leader.step(HeartbeatResponse("c", "a", leader.term))
    assert len(appends_to(drain(leader), "c")) == 1


def test_lost_appends_in_replicate_state_are_resent_after_heartbeats_show_no_progress():
    leader = replicating_leader(max_inflight_appends=2)
    for i in range(4):
        leader.propose(f"cmd{i}".encode())
    drain(leader)
    for _ in range(2):
        leader.step(HeartbeatResponse("b", "a", leader.term))
    resent = appends_to(drain(leader), "b")
    assert leader.prs["b"].state is ProgressState.PROBE
    assert resent and resent[0].prev_index == leader.prs["b"].match


def test_a_leader_refuses_proposals_beyond_its_uncommitted_bound():
    net = Network(["a", "b", "c"], config(max_uncommitted_bytes=100))
    net.campaign("a")
    net.isolate("a")
    net.propose("a", b"x" * 60)
    with pytest.raises(ProposalDropped):
        net.propose("a", b"y" * 60)
    net.recover()
    net.tick("a", 3)
    net.propose("a", b"y" * 60)


def test_reads_waiting_are_bounded():
    net = Network(["a", "b", "c"], config(max_pending_reads=3))
    net.campaign("a")
    net.isolate("a")
    for i in range(3):
        net.nodes["a"].read_index(bytes([i]))
    with pytest.raises(ProposalDropped):
        net.nodes["a"].read_index(b"one too many")


def test_a_follower_refuses_to_assemble_a_snapshot_above_its_bound():
    follower = Raft("b", config(max_snapshot_bytes=1000), MemoryStorage(), random.Random(1))
    meta = SnapshotMeta(50, 1, ConfState(frozenset({"a", "b"})))
    follower.step(SnapshotChunk("a", "b", 2, meta, 0, 10**9, b"x" * 100))
    status = follower.status()
    assert status["counters"]["refused_snapshots"] == 1
    assert status["snapshot_bytes_received"] == 0
    follower.step(Heartbeat("a", "b", 2, 0))
    assert follower.lead == "a"
