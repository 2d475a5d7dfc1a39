"""Deltas of a sharded namespace to a partition's other owners: direct and acknowledged.

An owner group is small (the R - 1 other owners of a partition), so the
epidemic of `dissemination` buys nothing there: a round reaches every peer
of the group anyway, and retransmitting blind `retransmit_mult` times sent a
delta six times to the one other owner of an R = 2 group, filling owners'
queues with copies the peer already had. Here each delta goes straight to
every peer of its group, packed with that peer's other deltas into messages
of `max_message_bytes` that carry an id; the receiver acknowledges the id
(`d.ack`) and does not forward the deltas (the sender reached every owner
itself). A delta a peer acknowledged is never sent to it again. One it did
not is sent again after `interval`, then twice that, up to 8 intervals, at most
`limit(group)` times in all (memberlist's retransmit limit with n the group
size), and then left to anti-entropy, as a delta pushed out of a full queue
is. With no loss, a write costs one message share per other owner and one
acknowledgement back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmnode.errors import DecodeError
from swarmnode.sansio import Address, Message, Output

MSG_ACK = "d.ack"
ACK_ID = "a"
"""The field of a `d.deltas` message that asks for an acknowledgement under this id."""
_IDS = 1 << 62
BACKOFF_DOUBLINGS = 3
"""A retransmission waits interval, 2, 4, then 8 intervals at most: an owner that stays
silent is given up within seconds, not minutes."""


class _Delta:
    __slots__ = ("key", "ns", "payload", "size")

    def __init__(self, ns: str, key: str, payload: bytes, size: int) -> None:
        self.ns = ns
        self.key = key
        self.payload = payload
        self.size = size


class _Copy:
    """One delta owed to one peer."""

    __slots__ = ("delta", "due", "limit", "sends")

    def __init__(self, delta: _Delta, limit: int) -> None:
        self.delta = delta
        self.limit = limit
        self.sends = 0
        self.due = 0.0


@dataclass
class _Peer:
    copies: dict[int, _Copy] = field(default_factory=dict)
    """Unacknowledged copies by sequence number (insertion order: oldest first)."""
    fresh: list[int] = field(default_factory=list)
    """Sequence numbers of copies never sent yet."""


class OwnerDelivery:
    """Per-peer queues of the deltas owed to owner groups (see the module docstring)."""

    def __init__(
        self,
        interval: float,
        max_message_bytes: int,
        max_queue: int,
        limit: Callable[[int], int],
        message: Callable[[list[tuple[str, str, bytes, int]]], Message],
        dropped: Callable[[int], None],
    ) -> None:
        self._interval = interval
        self._budget = max_message_bytes
        self._max_queue = max_queue
        self._limit = limit
        self._message = message
        self._dropped = dropped
        """Counts copies given up: past their limit unacknowledged, or out of a full queue."""
        self._peers: dict[Address, _Peer] = {}
        self._count = 0
        self._seq = 0
        self._next_id = 0
        self._sent: OrderedDict[int, tuple[Address, list[int]]] = OrderedDict()
        """What each message still awaiting its acknowledgement carried, by message id."""
        self._fresh = False
        self._next_retry: float | None = None

    def pending(self) -> int:
        return self._count

    def enqueue(
        self, ns: str, key: str, payload: bytes, size: int, group: tuple[Address, ...]
    ) -> None:
        """Owe the delta to every peer of `group` (its partition's other live owners)."""
        delta = _Delta(ns, key, payload, size)
        limit = self._limit(len(group) + 1)
        for peer in group:
            self._seq += 1
            queue = self._peers.setdefault(peer, _Peer())
            queue.copies[self._seq] = _Copy(delta, limit)
            queue.fresh.append(self._seq)
            self._count += 1
        self._fresh = True
        if self._count > self._max_queue:
            self._trim()

    def next_deadline(self) -> float | None:
        if not self._count:
            return None
        if self._fresh:
            return 0.0
        return self._next_retry

    def tick(self, now: float) -> Output:
        """Send what was never sent, and what is due for a retransmission."""
        out = Output()
        if not self._count:
            return out
        retry = self._next_retry is not None and now >= self._next_retry
        if not (self._fresh or retry):
            return out
        self._fresh = False
        next_retry: float | None = None
        for peer in list(self._peers):
            queue = self._peers[peer]
            seqs = queue.fresh
            queue.fresh = []
            if retry:
                due = [s for s, c in queue.copies.items() if c.sends and c.due <= now]
                given_up = [s for s in due if queue.copies[s].sends >= queue.copies[s].limit]
                for s in given_up:
                    del queue.copies[s]
                if given_up:
                    self._count -= len(given_up)
                    self._dropped(len(given_up))
                seqs = seqs + [s for s in due if s in queue.copies]
            self._send(now, peer, queue, seqs, out)
            for c in queue.copies.values():
                if c.sends and (next_retry is None or c.due < next_retry):
                    next_retry = c.due
            if not queue.copies:
                del self._peers[peer]
        self._next_retry = next_retry
        return out

    def _send(self, now: float, peer: Address, queue: _Peer, seqs: list[int], out: Output) -> None:
        """Pack the copies `seqs` into messages for `peer` (a bigger one goes alone)."""
        batch: list[int] = []
        used = 0
        for s in seqs:
            copy = queue.copies.get(s)
            if copy is None:
                continue
            if batch and used + copy.delta.size > self._budget:
                out.send.append((peer, self._seal(now, peer, queue, batch)))
                batch, used = [], 0
            batch.append(s)
            used += copy.delta.size
        if batch:
            out.send.append((peer, self._seal(now, peer, queue, batch)))

    def _seal(self, now: float, peer: Address, queue: _Peer, batch: list[int]) -> Message:
        items = []
        for s in batch:
            copy = queue.copies[s]
            copy.sends += 1
            copy.due = now + self._interval * (1 << min(copy.sends - 1, BACKOFF_DOUBLINGS))
            d = copy.delta
            items.append((d.ns, d.key, d.payload, d.size))
        msg_id = self._next_id
        self._next_id = (self._next_id + 1) % _IDS
        self._sent[msg_id] = (peer, batch)
        if len(self._sent) > self._max_queue:
            self._sent.popitem(last=False)
        msg = self._message(items)
        msg[ACK_ID] = msg_id
        return msg

    def acked(self, sender: Address, msg: Message) -> None:
        """A peer acknowledged messages: it has their deltas; raises DecodeError if malformed."""
        ids = msg.get(ACK_ID)
        if type(ids) is not list or not all(type(i) is int for i in ids):
            raise DecodeError("d.ack: a must be a list of message ids")
        queue = self._peers.get(sender)
        for msg_id in ids:
            sent = self._sent.get(msg_id)
            if sent is None or sent[0] != sender:
                continue  # unknown, forgotten, or another peer's id
            del self._sent[msg_id]
            if queue is None:
                continue
            for s in sent[1]:
                if queue.copies.pop(s, None) is not None:
                    self._count -= 1
        if queue is not None and not queue.copies:
            del self._peers[sender]

    def _trim(self) -> None:
        """Keep 90% of the copies: drop the most sent first, oldest first among equals."""
        keep = max(0, self._max_queue - max(1, self._max_queue // 10))
        ranked = sorted(
            ((c.sends, s, peer) for peer, q in self._peers.items() for s, c in q.copies.items()),
            key=lambda t: (-t[0], t[1]),
        )
        gone = ranked[: len(ranked) - keep]
        for _, s, peer in gone:
            del self._peers[peer].copies[s]
        self._count -= len(gone)
        self._dropped(len(gone))
        for peer in list(self._peers):
            queue = self._peers[peer]
            queue.fresh = [s for s in queue.fresh if s in queue.copies]
            if not queue.copies:
                del self._peers[peer]


def acknowledgement(sender: Address, msg: Message) -> Output:
    """The `d.ack` a received `d.deltas` message asks for (none for epidemic gossip)."""
    msg_id = msg.get(ACK_ID)
    if msg_id is None:
        return Output()
    if type(msg_id) is not int or not 0 <= msg_id < _IDS:
        raise DecodeError("d.deltas: a must be a message id")
    return Output(send=[(sender, {"t": MSG_ACK, ACK_ID: [msg_id]})])
