"""The node's part in the group, driven by hand through its Ready contract: a forwarded
command that the network delivers twice is proposed once (the simulator found the second
application answering a cas that had swapped as not swapped), and a member outside the
group (no log) is served by the leader."""

from __future__ import annotations

import random
from typing import Any

from swarmnode.consensus import machine
from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.group import ACK, ANNOUNCE, FORWARD, ConsensusGroup, GroupSettings
from swarmnode.consensus.records import EntryKind
from swarmnode.consensus.storage import MemoryStorage, bootstrap
from swarmnode.consensus.voters import MemberView
from swarmnode.errors import Unavailable


class LoneLeader:
    """One voter's group, its storage written at every Ready as a runtime would."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        bootstrap(self.storage, ["a"])
        self.group = ConsensusGroup(
            "a", RaftConfig.local(), GroupSettings(), self.storage, random.Random(1), 0.0
        )
        self.now = 0.0
        self.sent: list[tuple[str, dict[str, Any]]] = []
        while not self.group.is_leader:
            self.step(lambda now: self.group.tick(now, {"a": MemberView(True)}))

    def step(self, fn: Any) -> None:
        self.now += 0.01
        fn(self.now)
        while self.group.has_ready():
            rd = self.group.ready()
            self.sent += rd.messages
            if rd.persist is not None:
                self.storage.persist(rd.persist)
                self.group.persisted(rd.persist)

    def forward(self, origin: str, ident: int, command: bytes) -> None:
        msg = {"t": FORWARD, "f": origin, "id": ident, "cmd": command}
        self.step(lambda now: self.group.receive(now, origin, msg))

    def acks(self, to: str) -> list[tuple[int, int, int]]:
        return [(m["id"], m["index"], m["term"]) for n, m in self.sent if n == to and m["t"] == ACK]

    def entries_with(self, data: bytes) -> int:
        log = self.group.raft.log  # type: ignore[union-attr]
        return sum(
            1
            for i in range(log.first_index(), log.last_index() + 1)
            if log.entry(i).kind is EntryKind.NORMAL and log.entry(i).data == data
        )


def test_a_duplicated_forward_is_proposed_once_and_acknowledged_with_the_same_entry():
    node = LoneLeader()
    swap = machine.cas("decisions", "k", machine.ABSENT, 1)
    node.forward("b", 7, swap)
    node.forward("b", 7, swap)
    first, again = node.acks("b")
    assert first == again
    assert node.entries_with(swap) == 1
    assert node.group.machine.read("decisions", "k") == 1


def test_the_same_request_id_with_another_command_is_a_new_command():
    """Request ids restart when the follower does: only the same command is a duplicate."""
    node = LoneLeader()
    node.forward("b", 7, machine.cas("decisions", "k", machine.ABSENT, 1))
    node.forward("b", 7, machine.cas("decisions", "k", 1, 2))
    first, second = node.acks("b")
    assert first[1] != second[1]
    assert node.group.machine.read("decisions", "k") == 2


class Outsider:
    """A member outside the group (no log): it only heard the leader announce itself."""

    def __init__(self, leader: LoneLeader) -> None:
        self.leader = leader
        self.group = ConsensusGroup(
            "c", RaftConfig.local(), GroupSettings(), MemoryStorage(), random.Random(2), 0.0
        )
        self.group.receive(0.0, "a", {"t": ANNOUNCE, "f": "a", "term": 1})
        self.results: list[tuple[int, Any]] = []

    def exchange(self) -> None:
        """Carry messages both ways until both sides are quiet."""
        while True:
            rd = self.group.ready()
            self.results += rd.results
            to_leader = [m for n, m in rd.messages if n == "a"]
            for m in to_leader:
                self.leader.step(lambda now, m=m: self.leader.group.receive(now, "c", m))
            back = [m for n, m in self.leader.sent if n == "c"]
            self.leader.sent = [(n, m) for n, m in self.leader.sent if n != "c"]
            for m in back:
                self.group.receive(self.leader.now, "a", m)
            if not to_leader and not back and not self.group.has_ready():
                return


def test_a_member_outside_the_group_gets_cas_and_reads_through_the_leader():
    leader = LoneLeader()
    outsider = Outsider(leader)
    assert not outsider.group.joined
    outsider.group.submit(0.0, 1, machine.cas("decisions", "k", machine.ABSENT, "v"))
    outsider.exchange()
    outsider.group.read(0.0, 2, "decisions", "k")
    outsider.group.read(0.0, 3, "decisions", "nothing")
    outsider.exchange()
    answers = dict(outsider.results)
    assert answers[1]["ok"] is True and answers[1]["value"] == "v"
    assert answers[2] == "v"
    assert answers[3] is machine.ABSENT
    assert leader.group.machine.read("decisions", "k") == "v"


def test_an_outsider_that_heard_of_no_leader_answers_unavailable_at_once():
    group = ConsensusGroup(
        "c", RaftConfig.local(), GroupSettings(), MemoryStorage(), random.Random(2), 0.0
    )
    group.submit(0.0, 1, machine.cas("decisions", "k", machine.ABSENT, 1))
    [(token, error)] = group.ready().results
    assert token == 1 and isinstance(error, Unavailable)


def test_a_lone_leader_sleeps_until_its_duties_and_ticks_again_once_it_has_a_peer():
    lone = LoneLeader()
    group = lone.group
    tick = group.cfg.tick_interval
    # A group of one has no heartbeat to send: its next wake-up is its announce/autopilot
    # round, not the next Raft tick.
    assert group.next_deadline() - lone.now > 10 * tick
    both = {"a": MemberView(True), "b": MemberView(True)}
    lone.now = group.next_deadline()
    lone.step(lambda now: group.tick(now, both))
    assert group.raft is not None and "b" in group.raft.conf.members()
    assert group.next_deadline() <= lone.now + tick
    sent = len(lone.sent)
    for _ in range(3 * group.cfg.heartbeat_ticks):
        lone.step(lambda now: group.tick(now, both))
    assert any(node == "b" and msg["t"].startswith("raft.") for node, msg in lone.sent[sent:])
