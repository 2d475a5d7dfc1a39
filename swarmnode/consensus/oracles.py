"""Raft's safety properties (Figure 3 of the paper), checked while a simulation runs.

A simulator calls these hooks at every step (message, tick, Ready); the first
broken property raises `SafetyViolation` at that step, so a failing seed stops
where the bug acts, not at a symptom far later.

- Election Safety: at most one leader per term.
- Leader Append-Only: a leader never overwrites or deletes entries of its log
  during its term (checked by identity of its last entry between steps).
- Log Matching: if two logs hold an entry with the same index and term, the
  logs are identical up to it. Checked inductively on every entry any node
  writes: an (index, term) pair always comes with the same data and the same
  term before it, which makes whole prefixes equal.
- Leader Completeness: an entry committed in a term is in the log of every
  leader of a later term. An applied entry was committed at the latest in the
  term its applier was in, so every leader of a higher term must hold it.
- State Machine Safety: no two nodes apply different entries at one index.
- Durability: term and vote survive a crash; a node never votes for two
  candidates in one term, across crashes too; a vote, a vote request or any
  message of a term leaves only once that term (and vote) is durable; the
  durable commit index never goes back, and the in-memory one never within a
  life.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from swarmnode.consensus.messages import RaftMessage, VoteRequest, VoteResponse
from swarmnode.consensus.raft import Raft
from swarmnode.consensus.ready import RaftReady, Role
from swarmnode.consensus.records import Entry, HardState


class SafetyViolation(AssertionError):
    """A Raft safety property does not hold."""


@dataclass
class _Applied:
    term: int
    digest: bytes
    observer_term: int


def _digest(entry: Entry) -> bytes:
    return hashlib.blake2b(bytes([entry.kind]) + entry.data, digest_size=16).digest()


class RaftOracles:
    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}
        self._marks: dict[str, tuple[int, int, Entry]] = {}
        self._checked_leaders: set[tuple[str, int]] = set()
        self._entries: dict[tuple[int, int], tuple[bytes, int]] = {}
        self.applied: dict[int, _Applied] = {}
        self._durable: dict[str, HardState] = {}
        self._commit: dict[str, int] = {}
        self._votes: dict[tuple[str, int], str] = {}
        self.steps = 0

    def observe(self, node: str, raft: Raft) -> None:
        """After every step of `node`."""
        self.steps += 1
        commit = raft.log.committed
        if commit < self._commit.get(node, 0):
            self._fail(f"{node}: commit index went back from {self._commit[node]} to {commit}")
        self._commit[node] = commit
        if raft.role is not Role.LEADER:
            self._marks.pop(node, None)
            return
        holder = self.leaders.setdefault(raft.term, node)
        if holder != node:
            self._fail(f"election safety: {holder} and {node} both lead term {raft.term}")
        if (node, raft.term) not in self._checked_leaders:
            self._checked_leaders.add((node, raft.term))
            for index, applied in self.applied.items():
                if applied.observer_term < raft.term:
                    self._check_holds(node, raft, index, applied)
        self._check_append_only(node, raft)

    def on_ready(self, node: str, raft: Raft, rd: RaftReady) -> None:
        """When `node` hands out a Ready: the entries it is about to write."""
        if rd.entries:
            prev_term = raft.log.term(rd.entries[0].index - 1)
            if prev_term is None:
                self._fail(f"{node}: entries {rd.entries[0].index}.. follow a compacted entry")
            for entry in rd.entries:
                key = (entry.index, entry.term)
                seen = self._entries.setdefault(key, (_digest(entry), prev_term))
                if seen != (_digest(entry), prev_term):
                    self._fail(
                        f"log matching: {node} holds another entry at index {entry.index} "
                        f"term {entry.term} (or after another term) than a peer did"
                    )
                prev_term = entry.term

    def on_persist(self, node: str, rd: RaftReady) -> None:
        """After `node` made a Ready durable."""
        hs = rd.hard_state
        if hs is None:
            return
        old = self._durable.get(node, HardState())
        if hs.term < old.term:
            self._fail(f"{node}: durable term went back from {old.term} to {hs.term}")
        if hs.term == old.term and old.vote is not None and hs.vote != old.vote:
            self._fail(f"{node}: vote in term {hs.term} changed from {old.vote} to {hs.vote}")
        if hs.commit < old.commit:
            self._fail(f"{node}: durable commit went back from {old.commit} to {hs.commit}")
        self._durable[node] = hs

    def on_send(self, node: str, msg: RaftMessage) -> None:
        """`node` sends `msg`; the votes it depends on must be durable already."""
        durable = self._durable.get(node, HardState())
        if isinstance(msg, VoteResponse) and not msg.pre and not msg.reject:
            voted = self._votes.setdefault((node, msg.term), msg.to)
            if voted != msg.to:
                self._fail(f"{node} granted votes to {voted} and {msg.to} in term {msg.term}")
            if (durable.term, durable.vote) != (msg.term, msg.to):
                self._fail(f"{node} granted a vote in term {msg.term} before it was durable")
        elif isinstance(msg, VoteRequest) and not msg.pre:
            if (durable.term, durable.vote) != (msg.term, node):
                self._fail(f"{node} asked for votes in term {msg.term} before its own was durable")
        elif durable.term < msg.term and not isinstance(msg, VoteRequest | VoteResponse):
            self._fail(f"{node} sent a term-{msg.term} message before the term was durable")

    def on_apply(
        self, node: str, raft: Raft, entry: Entry, leaders: list[tuple[str, Raft]]
    ) -> None:
        """`node` applies a committed entry; `leaders` are the nodes leading right now."""
        record = self.applied.get(entry.index)
        if record is None:
            record = _Applied(entry.term, _digest(entry), raft.term)
            self.applied[entry.index] = record
        elif (record.term, record.digest) != (entry.term, _digest(entry)):
            self._fail(f"state machine safety: {node} applied another entry at {entry.index}")
        record.observer_term = min(record.observer_term, raft.term)
        for leader, leader_raft in leaders:
            if leader_raft.term > record.observer_term:
                self._check_holds(leader, leader_raft, entry.index, record)

    def on_boot(self, node: str, raft: Raft) -> None:
        """`node` started for the first time, from whatever its storage was given."""
        self._durable[node] = HardState(raft.term, raft.vote, raft.log.committed)
        self._commit[node] = raft.log.committed

    def on_restart(self, node: str, raft: Raft) -> None:
        """`node` was rebuilt from its storage after a crash."""
        hs = self._durable.get(node, HardState())
        if (raft.term, raft.vote) != (hs.term, hs.vote):
            self._fail(
                f"{node}: after restart term/vote are {raft.term}/{raft.vote}, "
                f"durable were {hs.term}/{hs.vote}"
            )
        if raft.log.committed < hs.commit:
            self._fail(f"{node}: after restart commit {raft.log.committed} < durable {hs.commit}")
        self._commit[node] = raft.log.committed
        self._marks.pop(node, None)

    def _check_holds(self, node: str, raft: Raft, index: int, applied: _Applied) -> None:
        if index <= raft.log.offset:
            return
        if raft.log.term(index) != applied.term:
            self._fail(
                f"leader completeness: {node}, leader of term {raft.term}, lacks entry "
                f"{index} (term {applied.term}) applied in term {applied.observer_term}"
            )

    def _check_append_only(self, node: str, raft: Raft) -> None:
        mark = self._marks.get(node)
        log = raft.log
        if mark is not None and mark[0] == raft.term and mark[1] > log.offset:
            index, entry = mark[1], mark[2]
            if index > log.last_index() or log.entry(index) is not entry:
                self._fail(f"leader append-only: {node} rewrote its entry {index}")
        if log.entries:
            self._marks[node] = (raft.term, log.last_index(), log.entries[-1])

    def _fail(self, message: str) -> None:
        raise SafetyViolation(message)
