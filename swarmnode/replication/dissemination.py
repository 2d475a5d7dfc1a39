"""Delta dissemination: infection-style gossip of CRDT deltas.

A committed local write becomes a delta that this node sends to `fanout`
random peers, at once and then once per gossip round, until it has been
transmitted `retransmit_mult * ceil(log10(n + 1))` times (memberlist's
TransmitLimitedQueue; epidemic theory gives log N rounds to reach everyone).
A node that receives a delta which changed its state forwards that same delta
bytes the same way; a delta that changed nothing stops there. Received deltas
are never joined into bigger ones and re-sent whole (a classic δ-CRDT trap
that multiplies traffic), and whatever gossip misses, anti-entropy repairs.

Small deltas are packed together into messages up to `max_message_bytes`, so
a busy node sends few datagrams; a delta bigger than that travels alone (the
transport then carries it over a stream). A round gives each of its peers as
many messages as its queue fills, up to `max_round_bytes`: one message per
peer per round would cap a node's gossip at a few hundred deltas a second, and
a faster writer's deltas would wait in the queue until anti-entropy carried
them instead.

A transmission to a peer known to hold the delta is counted but not sent:
the peer it came from, and any peer a copy of it has come from since (`heard`),
have it, and the copy would only come back as a duplicate. At 3 nodes both
peers forward each write to each other; the first to send proves to the other
that it holds the write, and the other's forwards to it are left out.

When a round's fanout covers every peer (a cluster of at most `fanout + 1`
nodes), the epidemic has nothing left to do: the node reaches everybody
itself, and a further copy to a peer can only make up for a lost datagram.
Each delta then goes to every peer in `direct_copies` rounds, `interval`
apart (a loss burst, such as a full receive buffer, takes consecutive
datagrams, not ones a round apart), instead of in `retransmit_mult` rounds
back to back: at 3 nodes each peer received every write 6 times (3 from the
writer, 3 forwarded by the other peer) and decoded them all on a shared CPU
the writer needed. A peer that finds the delta new still forwards it, so a
peer also gets it from the others: what one lost path misses, another
carries, and anti-entropy repairs the rest.

A delta of a sharded namespace concerns only its partition's owners: it is
queued with those peers as its group and sent straight to each of them,
acknowledged, and retransmitted only to a peer that has not acknowledged it
(`owners.py`), so a write costs R nodes' traffic, not N.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import count, islice
from operator import attrgetter
from typing import Any

from swarmnode.errors import DecodeError
from swarmnode.metrics import Registry
from swarmnode.replication.owners import OwnerDelivery
from swarmnode.sansio import Address, Message, Output
from swarmnode.settings import check_settings, setting

MSG_DELTAS = "d.deltas"
# msgpack overhead of one [ns, key, payload] item beyond its three byte strings.
ITEM_OVERHEAD = 12


@dataclass
class DisseminationConfig:
    """Knobs of delta gossip: the `[dissemination]` section."""

    interval: float = setting(0.2, "s", low=0, above=True)
    """Seconds between gossip rounds (retransmissions). Serf's model uses 200 ms."""

    fanout: int = setting(3, "peers", low=1)
    """Peers each round's message goes to. Higher spreads faster, costs more."""

    retransmit_mult: int = setting(6, "", low=1)
    """Transmissions per delta = retransmit_mult * ceil(log10(n + 1)). memberlist uses 4;
    at 4 the simulator's 25-node broadcast workload left about 1 in 3,000 (delta, node)
    pairs to anti-entropy, at 6 none, with no more messages under load (deltas share
    messages) and about 50% more when idle."""

    direct_copies: int = setting(2, "rounds", low=1)
    """Rounds a delta is sent in when every round reaches every peer (at most `fanout`
    peers), `interval` apart: each peer gets it that many times from this node and at
    most as many from each peer that forwards it (none more once a copy from the peer
    shows it holds the delta). Further copies only cover datagram loss. In the simulator
    (3 nodes, anti-entropy off, `simulations/direct_copies.py`) 2 delivered every write
    up to 10% loss and left 6 in 5,000 (peer, write) pairs to anti-entropy at 20%, 67 at
    30%; 3 left none at 30%, 1 left 4 at 10% (measured before forwards stopped at peers
    known to hold the delta; with 2 since: none up to 10% over 5 seeds, and over 36
    seeds 96 in 36,000 at 20%, 476 at 30%)."""

    push_interval: float = setting(0.04, "s", low=0)
    """Least seconds between two eager pushes of fresh deltas. A delta written after a
    quiet spell leaves at the next tick; a busy node packs what came in during this time
    into one push instead of sending a message per peer on every node tick. 40 ms keeps
    the simulated 25-node broadcast challenge under 20 messages per operation (20 ms
    spent 21); it paces pushes alone (retransmission rounds do not delay them), so the
    node's tick stays short and a sparse write is not held back by it."""

    max_message_bytes: int = setting(1200, "bytes", low=64)
    """Payload budget of one gossip message, so that a message plus the envelope fits one
    1400-byte datagram. Larger single deltas go alone (over a stream)."""

    max_round_bytes: int = setting(65_536, "bytes", low=64)
    """Bytes of deltas one round may send each of its peers, in messages of at most
    `max_message_bytes`. A node's gossip carries at most fanout * max_round_bytes per round
    (rounds come every tick while fresh deltas wait): 64 KiB lets one node send a few
    thousand 100-byte writes a second to every peer, all `retransmit_mult` times."""

    max_queue: int = setting(50_000, "deltas", low=1)
    """Deltas waiting for retransmission at most; beyond it the most transmitted are
    dropped (anti-entropy repairs what they would have carried)."""

    dedup_window: float = setting(5.0, "s", low=0)
    """Seconds a delta written or received here is remembered, so that its further copies
    (retransmissions, peers' forwards) are dropped before they reach the store; at most
    `max_queue` are remembered. Every copy of a write arrives within `retransmit_mult`
    rounds of the first under normal delays; much later copies go through the merge rules.
    0 merges every copy."""

    enabled: bool = setting(True)
    """False turns delta gossip off: writes then reach peers only through anti-entropy
    (`sync`, periodic rounds, rounds at join). For measuring and testing repair alone;
    never on a production cluster."""

    def __post_init__(self) -> None:
        check_settings(self, "dissemination")

    @classmethod
    def local(cls) -> DisseminationConfig:
        return cls(interval=0.1, push_interval=0.01)

    @classmethod
    def lan(cls) -> DisseminationConfig:
        return cls()


class _Item:
    __slots__ = ("due", "holders", "key", "ns", "payload", "seq", "size", "taken", "transmits")

    def __init__(
        self, seq: int, ns: str, key: str, payload: bytes, source: Address | None = None
    ) -> None:
        self.seq = seq
        self.holders: tuple[Address, ...] = () if source is None else (source,)
        """Peers known to hold this delta: it is not sent to them."""
        self.taken: object = None
        self.ns = ns
        self.key = key
        self.payload = payload
        self.transmits = 0
        self.due = 0.0
        self.size = (
            len(ns) + len(key.encode("utf-8", "surrogatepass")) + len(payload) + ITEM_OVERHEAD
        )


class Dissemination:
    def __init__(
        self, config: DisseminationConfig, rng: random.Random, metrics: Registry | None = None
    ) -> None:
        self.config = config
        self._rng = rng
        self._tiers: list[list[_Item]] = []
        """Queued deltas by how often they were sent (tier t: sent t times), each tier in
        queueing order, so the next to send (least sent, newest first) and the next to drop
        (most sent, oldest first) are found without sorting the queue."""
        self._waiting: deque[_Item] = deque()
        """Deltas sent directly to every peer, out of the tiers until their next copy is
        due (`due`, in the order they were sent, so due times only grow)."""
        self._count = 0
        self._index: dict[tuple[str, str, bytes], _Item] = {}
        """Queued deltas by their bytes, for `heard`."""
        self._seq = count()
        self._fresh = False
        self._next_round = 0.0
        self._last_push = float("-inf")
        m = metrics if metrics is not None else Registry()
        self._queued = m.counter(
            "swarmnode_gossip_deltas_queued_total",
            "Deltas queued for gossip: local writes, and received deltas that were new here.",
            stats=("dissemination", "deltas_queued"),
        )
        self._sent = m.counter(
            "swarmnode_gossip_deltas_sent_total",
            "Deltas sent in gossip messages, retransmissions included.",
            stats=("dissemination", "deltas_sent"),
        )
        self._messages = m.counter(
            "swarmnode_gossip_messages_sent_total",
            "Gossip messages of deltas sent.",
            stats=("dissemination", "messages_sent"),
        )
        self._bytes = m.counter(
            "swarmnode_gossip_sent_bytes_total",
            "Bytes of deltas (namespace, key and payload) sent in gossip messages.",
            stats=("dissemination", "bytes_sent"),
        )
        self._received = m.counter(
            "swarmnode_gossip_deltas_received_total",
            "Deltas received in gossip messages, duplicates included.",
            stats=("dissemination", "deltas_received"),
        )
        self._dropped = m.counter(
            "swarmnode_gossip_deltas_dropped_total",
            "Deltas pushed out of a full gossip queue (anti-entropy repairs what they carried).",
            stats=("dissemination", "queue_dropped"),
        )
        m.gauge(
            "swarmnode_gossip_pending_deltas",
            "Deltas waiting for (re)transmission.",
            fn=self.pending,
            stats=("dissemination", "pending"),
        )
        self._owners = OwnerDelivery(
            config.interval,
            config.max_message_bytes,
            config.max_queue,
            self.limit,
            self._owners_message,
            self._dropped.inc,
        )
        """Deltas for some peers only (a sharded namespace's partition owners)."""

    @property
    def stats(self) -> dict[str, int]:
        """The counters since start, by their `stats` names."""
        return {
            "deltas_queued": self._queued.value,
            "deltas_sent": self._sent.value,
            "messages_sent": self._messages.value,
            "bytes_sent": self._bytes.value,
            "deltas_received": self._received.value,
            "queue_dropped": self._dropped.value,
        }

    def pending(self) -> int:
        return self._count + self._owners.pending()

    def enqueue(
        self,
        ns: str,
        key: str,
        payload: bytes,
        group: tuple[Address, ...] | None = None,
        source: Address | None = None,
    ) -> None:
        """Queue a delta (local, or received from `source` and new to us) for gossip: to
        every peer, or only to the peers of `group`."""
        if not self.config.enabled:
            return
        if group is not None:
            if group:
                size = len(ns) + len(key.encode("utf-8", "surrogatepass")) + len(payload)
                self._owners.enqueue(ns, key, payload, size + ITEM_OVERHEAD, group)
                self._queued.inc()
            return
        if not self._tiers:
            self._tiers.append([])
        item = _Item(next(self._seq), ns, key, payload, source)
        self._tiers[0].append(item)
        self._count += 1
        self._index[ns, key, payload] = item
        self._fresh = True
        self._queued.inc()
        if self._count > self.config.max_queue:
            # Trim to 90% at once, dropping the most transmitted, oldest first.
            bound = self.config.max_queue
            self._drop(self._count - max(0, bound - max(1, bound // 10)))

    def heard(self, sender: Address, copies: Iterable[tuple[str, str, bytes]]) -> None:
        """Copies of deltas that came from `sender` after the first: it holds them, so the
        queue's own copies of them are not sent to it."""
        index = self._index
        for delta in copies:
            it = index.get(delta)
            if it is not None and sender not in it.holders:
                it.holders = (*it.holders, sender)

    def _left(self, items: Iterable[_Item]) -> None:
        """These deltas left the queue: out of the index too (unless queued again since)."""
        index = self._index
        for it in items:
            delta = (it.ns, it.key, it.payload)
            if index.get(delta) is it:
                del index[delta]

    def _drop(self, n: int) -> None:
        self._dropped.inc(n)
        self._count -= n
        while n and self._waiting:
            self._left((self._waiting.popleft(),))
            n -= 1
        for tier in reversed(self._tiers):
            gone = min(n, len(tier))
            self._left(tier[:gone])
            del tier[:gone]
            n -= gone
            if not n:
                break

    def limit(self, n_members: int) -> int:
        return self.config.retransmit_mult * max(1, math.ceil(math.log10(n_members + 1)))

    def next_deadline(self) -> float | None:
        owners = self._owners.next_deadline()
        if not self._count:
            return owners
        mine = self._next_round
        if self._fresh:
            mine = min(mine, self._last_push + self.config.push_interval)
        return mine if owners is None else min(mine, owners)

    def tick(self, now: float, peers: list[Address]) -> Output:
        """Send a round if one is due, or if fresh deltas wait and `push_interval` has
        passed since the last eager push; and what owner groups are owed. A retransmission
        round does not hold the next push back: it takes the fresh deltas of its moment
        along, and a delta written just after it leaves at the next tick."""
        out = self._owners.tick(now)
        if not (self._count and peers):
            return out
        pushing = self._fresh and now >= self._last_push + self.config.push_interval
        if not pushing and now < self._next_round:
            return out
        if pushing:
            self._last_push = now
        self._fresh = False
        self._next_round = now + self.config.interval
        self._release(now)
        if len(peers) <= self.config.fanout:
            self._direct_round(now, peers, out)
        else:
            limit = self.limit(len(peers) + 1)
            targets = self._rng.sample(peers, min(self.config.fanout, len(peers)))
            for peer in targets:
                if not self._round_to(peer, limit, out):
                    break
            for tier in self._tiers[limit:]:
                self._count -= len(tier)
                self._left(tier)
            del self._tiers[limit:]
        return out

    def _release(self, now: float) -> None:
        """Put the waiting deltas whose next copy is due back in their tiers."""
        while self._waiting and self._waiting[0].due <= now:
            it = self._waiting.popleft()
            while it.transmits >= len(self._tiers):
                self._tiers.append([])
            bisect.insort(self._tiers[it.transmits], it, key=_by_seq)

    def _direct_round(self, now: float, peers: list[Address], out: Output) -> None:
        """A round that reaches every peer: each queued delta goes to each of them (but its
        holders) once, in memberlist's order and packing (as `_message`), then waits
        `interval` for its next copy, or leaves the queue after `direct_copies` rounds.
        A peer's share stops at `max_round_bytes`; a delta counts as sent in a round that
        gave it to any peer (or whose peers all hold it), and what stays waits for the next
        round. Only the head of the queue a round can send is read, so a backlog of
        thousands costs a round no more than a full one."""
        order, heads = self._head()
        sent: set[int] = set()
        for it in order:
            if len(it.holders) >= len(peers) and all(p in it.holders for p in peers):
                sent.add(id(it))
        for peer in peers:
            rest = [it for it in order if peer not in it.holders]
            for chosen in _pack_round(
                rest, self.config.max_message_bytes, self.config.max_round_bytes
            ):
                sent.update(id(it) for it in chosen)
                out.send.append((peer, self._deltas_message(chosen)))
        if not sent:
            return
        for tier, head in zip(self._tiers, heads, strict=False):
            # The head read of each tier is its newest `head` deltas: only that tail changes.
            if head:
                tail = len(tier) - head
                tier[tail:] = [it for it in tier[tail:] if id(it) not in sent]
        due = now + self.config.interval
        for it in sorted((it for it in order if id(it) in sent), key=_by_seq):
            it.transmits += 1
            if it.transmits >= self.config.direct_copies:
                self._count -= 1
                self._left((it,))
            else:
                it.due = due
                self._waiting.append(it)

    def _head(self) -> tuple[list[_Item], list[int]]:
        """The deltas a round could send one peer, least sent and newest first: as many as
        `max_round_bytes` holds, then the next 256 (a message is filled from the next 256
        not yet sent); and how many were read from each tier."""
        order: list[_Item] = []
        heads: list[int] = []
        used = 0
        extra = 0
        for tier in self._tiers:
            start = len(order)
            for it in reversed(tier):
                if used >= self.config.max_round_bytes:
                    if extra == 256:
                        break
                    extra += 1
                order.append(it)
                used += it.size
            heads.append(len(order) - start)
            if extra == 256:
                break
        return order, heads

    def _round_to(self, peer: Address, limit: int, out: Output) -> bool:
        """One round's messages to `peer`, until the queue has nothing left for it or the
        round's bytes are spent; False if the queue had nothing at all."""
        taken = object()  # marks the deltas taken for this peer this round (_Item.taken)
        used = 0
        anything = False
        while used < self.config.max_round_bytes:
            chosen = self._message(limit, peer, taken)
            if chosen is None:
                break
            anything = True
            if chosen:
                used += sum(it.size for it in chosen)
                out.send.append((peer, self._deltas_message(chosen)))
        return anything

    def _message(self, limit: int, peer: Address, taken: object) -> list[_Item] | None:
        """The deltas of `peer`'s next message this round, promoted; None if none are left.

        Least transmitted first, newest first among equals (memberlist's order), among
        the first 256 in that order not yet taken for this peer this round. Deltas that
        `peer` holds are promoted as if sent and left out (an empty list when only they
        were found). The queue is read only as far as the message fills: a busy
        node's round sends dozens of messages from a queue of thousands."""
        passed: list[_Item] = []

        def candidates() -> Iterator[_Item]:
            for tier in self._tiers[:limit]:
                for it in reversed(tier):
                    if it.taken is taken:
                        continue
                    if peer in it.holders:
                        it.taken = taken
                        passed.append(it)
                        continue
                    yield it

        chosen = self._fit(islice(candidates(), 256))
        if not chosen and not passed:
            return None
        for it in chosen:
            it.taken = taken
        self._promote(chosen + passed)
        return chosen

    def _fit(self, candidates: Iterable[_Item]) -> list[_Item]:
        """The candidates, in order, that fit one message of `max_message_bytes` (the first
        always, however large, so an oversized delta still leaves)."""
        chosen: list[_Item] = []
        used = 0
        for it in candidates:
            if chosen and used + it.size > self.config.max_message_bytes:
                continue
            chosen.append(it)
            used += it.size
            if used >= self.config.max_message_bytes:
                break
        return chosen

    def _deltas_message(self, chosen: list[_Item]) -> Message:
        self._sent.inc(len(chosen))
        self._messages.inc()
        self._bytes.inc(sum(it.size for it in chosen))
        return {"t": MSG_DELTAS, "ds": [[it.ns, it.key, it.payload] for it in chosen]}

    def _owners_message(self, items: list[tuple[str, str, bytes, int]]) -> Message:
        self._sent.inc(len(items))
        self._messages.inc()
        self._bytes.inc(sum(size for _, _, _, size in items))
        return {"t": MSG_DELTAS, "ds": [[ns, key, payload] for ns, key, payload, _ in items]}

    def acked(self, sender: Address, msg: Message) -> None:
        """A `d.ack` from an owner-group peer; DecodeError if it is malformed."""
        self._owners.acked(sender, msg)

    def _promote(self, chosen: list[_Item]) -> None:
        """Move the chosen items up one tier each (they were just sent once more)."""
        by_tier: dict[int, set[int]] = {}
        for it in chosen:
            by_tier.setdefault(it.transmits, set()).add(id(it))
        for t, ids in by_tier.items():
            tier = self._tiers[t]
            # The chosen are among the newest of their tier: only its tail is rebuilt.
            start = len(tier)
            found = 0
            while found < len(ids):
                start -= 1
                found += id(tier[start]) in ids
            tier[start:] = [it for it in tier[start:] if id(it) not in ids]
        for it in chosen:
            it.transmits += 1
            if it.transmits == len(self._tiers):
                self._tiers.append([])
            bisect.insort(self._tiers[it.transmits], it, key=_by_seq)

    def receive(self, msg: Message) -> list[tuple[str, str, bytes]]:
        """The deltas a gossip message carries; DecodeError if it is malformed."""
        items = msg.get("ds")
        if type(items) is not list:
            raise DecodeError("d.deltas: ds must be a list")
        out = []
        for item in items:
            if type(item) is not list or len(item) != 3:
                raise DecodeError("d.deltas: each item is [ns, key, payload]")
            ns, key, payload = item
            if type(ns) is not str or type(key) is not str or type(payload) is not bytes:
                raise DecodeError("d.deltas: ns and key must be str, payload bytes")
            out.append((ns, key, payload))
        self._received.inc(len(out))
        return out


_by_seq = attrgetter("seq")


def _pack_round(
    rest: list[_Item], max_message: int, max_round: int, window: int = 256
) -> Iterator[list[_Item]]:
    """One peer's messages of a direct round: each filled first-fit from the first `window`
    deltas of `rest` not yet sent, the first always taken (as `Dissemination._fit`), until
    none are left or `max_round` bytes went.

    Linear in the deltas read: a message stops reading once the space it has left is
    smaller than any delta still after it, where one that went by it would have read
    its whole window (a round sends hundreds of messages of a few deltas each)."""
    n = len(rest)
    # smallest[i]: the smallest delta in rest[i:] (sent ones included: a lower bound).
    smallest = [0] * (n + 1)
    smallest[n] = max_message + 1
    for i in range(n - 1, -1, -1):
        size = rest[i].size
        smallest[i] = size if size < smallest[i + 1] else smallest[i + 1]
    taken = bytearray(n)
    first = 0
    used_round = 0
    while first < n and used_round < max_round:
        chosen: list[_Item] = []
        used = 0
        seen = 0
        i = first
        while i < n and seen < window:
            if taken[i]:
                i += 1
                continue
            seen += 1
            it = rest[i]
            if not chosen or used + it.size <= max_message:
                chosen.append(it)
                taken[i] = 1
                used += it.size
                if used >= max_message or max_message - used < smallest[i + 1]:
                    break
            i += 1
        while first < n and taken[first]:
            first += 1
        used_round += used
        yield chosen


def is_dissemination(msg: dict[str, Any]) -> bool:
    return msg.get("t") == MSG_DELTAS
