"""Raft's log as the algorithm sees it: a snapshot, then entries, with three marks.

    snapshot.index >= offset      entries held: offset+1 .. last_index
    applied <= committed <= last_index,  stable <= last_index

`offset` is the compaction point: entries up to it are gone, and `offset_term`
is the term of the entry at `offset` (needed to check the entry after it).
The snapshot may end after `offset`: `compact` keeps some entries behind the
snapshot so that a follower only a little behind catches up from the log.
`stable` says which entries are known durable; the rest wait for the next
Ready. The whole retained log is in memory: it is bounded by the snapshot
threshold plus the trailing entries (about 11,000 small entries by default),
and storage is read only at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence

from swarmnode.consensus.records import Entry, Snapshot


class RaftLog:
    def __init__(
        self,
        snapshot: Snapshot,
        offset: int,
        offset_term: int,
        entries: Sequence[Entry],
        committed: int,
    ) -> None:
        if not offset <= snapshot.meta.index:
            raise ValueError("the compaction point lies after the snapshot")
        if entries and entries[0].index != offset + 1:
            raise ValueError("stored entries do not start after the compaction point")
        self.snapshot = snapshot
        self.offset = offset
        self.offset_term = offset_term
        self.entries: list[Entry] = list(entries)
        self.stable = self.last_index()
        if self.last_index() < snapshot.meta.index:
            raise ValueError("stored log ends before its snapshot")
        self.committed = max(committed, snapshot.meta.index)
        if self.committed > self.last_index():
            raise ValueError("stored commit index lies past the log")
        self.applied = snapshot.meta.index
        self.first_unstable_change = self.last_index() + 1
        """Lowest index rewritten since the last Ready was handed out (see `stable_to`)."""

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def first_index(self) -> int:
        return self.offset + 1

    def term(self, index: int) -> int | None:
        """The term of the entry at `index`, or None if it is compacted or not there."""
        if index == self.offset:
            return self.offset_term
        if self.offset < index <= self.last_index():
            return self.entries[index - self.offset - 1].term
        if index == self.snapshot.meta.index:
            return self.snapshot.meta.term
        return None

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.offset - 1]

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a log ending at (last_index, last_term) at least as up to date as this one?"""
        mine = self.last_term()
        return last_term > mine or (last_term == mine and last_index >= self.last_index())

    def slice(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries lo..hi-1, cut after the first entry that reaches `max_bytes` in total."""
        out: list[Entry] = []
        size = 0
        for index in range(lo, hi):
            entry = self.entry(index)
            size += entry.size
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    def append(self, entries: Sequence[Entry]) -> None:
        """Put entries after the entry before entries[0], dropping any suffix they replace."""
        if not entries:
            return
        first = entries[0].index
        assert self.committed < first <= self.last_index() + 1, "never rewrite committed entries"
        del self.entries[first - self.offset - 1 :]
        self.entries.extend(entries)
        self.first_unstable_change = min(self.first_unstable_change, first)
        self.stable = min(self.stable, first - 1)

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Index of the first entry that is new or differs in term from this log; 0 if all
        are already here."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def conflict_hint(self, index: int, term: int) -> tuple[int, int]:
        """The last entry at or before `index` whose term is at most `term`, as (index, term).
        Every entry after it up to `index` has a larger term than `term`, so it cannot match
        a log whose entry at `index` has term `term`; one probe can skip them all."""
        index = min(index, self.last_index())
        while index > self.offset:
            entry_term = self.entry(index).term
            if entry_term <= term:
                return index, entry_term
            index -= 1
        return index, self.term(index) or 0

    def commit_to(self, index: int) -> bool:
        if index > self.committed:
            assert index <= self.last_index(), "commit past the end of the log"
            self.committed = index
            return True
        return False

    def unstable_entries(self) -> list[Entry]:
        return self.entries[self.stable - self.offset :]

    def stable_to(self, index: int, term: int) -> None:
        """The entries handed out up to `index` (of term `term`) were made durable. Entries
        rewritten since they were handed out stay unstable."""
        if self.first_unstable_change <= index:
            index = self.first_unstable_change - 1
        elif self.term(index) != term:
            return
        if index > self.stable:
            self.stable = index

    def handed_out(self) -> None:
        """The unstable entries were just handed out in a Ready."""
        self.first_unstable_change = self.last_index() + 1

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        meta = snapshot.meta
        self.snapshot = snapshot
        self.offset = meta.index
        self.offset_term = meta.term
        self.entries = []
        self.committed = meta.index
        self.stable = meta.index
        self.first_unstable_change = meta.index + 1

    def compact(self, snapshot: Snapshot, keep: int) -> int:
        """Take a local snapshot and drop entries up to `keep` entries behind it; returns the
        new compaction point."""
        self.snapshot = snapshot
        new_offset = max(self.offset, min(snapshot.meta.index - keep, self.stable))
        if new_offset > self.offset:
            self.offset_term = self.entry(new_offset).term
            del self.entries[: new_offset - self.offset]
            self.offset = new_offset
        return self.offset
