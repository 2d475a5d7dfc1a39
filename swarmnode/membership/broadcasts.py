"""Membership facts waiting to ride on outgoing messages.

SWIM spreads membership changes by piggybacking them on its own probes and
acks (plus a small gossip round while any are pending). Each fact is sent a
bounded number of times, growing with log N so that it reaches every member
with high probability. Facts sent fewest times go first, newest first among
equals, within a byte budget per message; a newer fact about a member replaces
any queued older one, since it supersedes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

LIST_OVERHEAD = 5
"""Bytes for the "g" key and the array header around the facts of one message."""
MIN_FACT_BYTES = 12
"""No encoded fact is smaller; once less budget than this is left, stop looking."""
MAX_MISSES = 8
"""Facts that did not fit before the search for smaller ones stops: facts differ little
in size, so a full message is full, and scanning a long queue per message costs O(queue)."""


def retransmit_limit(mult: int, live: int) -> int:
    """How often each fact is sent in a cluster of `live` members (memberlist's formula)."""
    return mult * math.ceil(math.log10(live + 1))


def encoded_size(wire: dict[str, Any]) -> int:
    return len(msgpack.packb(wire))


@dataclass
class _Pending:
    wire: dict[str, Any]
    size: int
    sent: int


class TransmitQueue:
    """Facts keyed by the member they are about, bucketed by how often each was sent."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._by_sent: dict[int, dict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, node_id: str, wire: dict[str, Any]) -> None:
        self._drop(node_id)
        self._pending[node_id] = _Pending(wire, encoded_size(wire), 0)
        self._by_sent.setdefault(0, {})[node_id] = None

    def take(self, budget: int, limit: int) -> list[dict[str, Any]]:
        """Facts for one message, at most `budget` encoded bytes; counts them as sent once more."""
        chosen: list[str] = []
        used = LIST_OVERHEAD
        misses = 0
        for sent in sorted(self._by_sent):
            for node_id in reversed(self._by_sent[sent]):
                size = self._pending[node_id].size
                if used + size <= budget:
                    chosen.append(node_id)
                    used += size
                else:
                    misses += 1
                if budget - used < MIN_FACT_BYTES or misses > MAX_MISSES:
                    break
            if budget - used < MIN_FACT_BYTES or misses > MAX_MISSES:
                break
        facts = []
        for node_id in chosen:
            item = self._pending[node_id]
            facts.append(item.wire)
            self._drop(node_id)
            if item.sent + 1 < limit:
                item.sent += 1
                self._pending[node_id] = item
                self._by_sent.setdefault(item.sent, {})[node_id] = None
        return facts

    def _drop(self, node_id: str) -> None:
        item = self._pending.pop(node_id, None)
        if item is None:
            return
        bucket = self._by_sent[item.sent]
        del bucket[node_id]
        if not bucket:
            del self._by_sent[item.sent]
