"""The node's part in the group, driven by hand through its Ready contract: a forwarded
command that the network delivers twice is proposed once (the simulator found the second
application answering a cas that had swapped as not swapped)."""

from __future__ import annotations

import random
from typing import Any

from swarmnode.consensus import machine
from swarmnode.consensus.config import RaftConfig
from swarmnode.consensus.group import ACK, FORWARD, ConsensusGroup, GroupSettings
from swarmnode.consensus.records import EntryKind
from swarmnode.consensus.storage import MemoryStorage, bootstrap
from swarmnode.consensus.voters import MemberView


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
