"""Handing partitions over between nodes, as a sans-IO state machine.

A node that holds data of a partition it does not own (it lost the partition
to a newcomer, or took writes as hints while the owners were away) hands it
to the owners and drops it once they have it: Riak's ownership transfer and
Dynamo's hinted handoff are the same protocol here. A node that became an
owner asks for the partition (`h.fill`): a former owner still holding it hands
it over the same way, a current owner sends a copy (and keeps its own).

A session moves one partition from one sender to one or more receivers, a
page of leaves at a time:

1. `h.offer {s, ns, p, lo, hi, items: [[key, digest]], last}`: every entry
   the sender holds in leaves lo..hi.
2. `h.want {s, lo, keys}`: the receiver lists the keys it lacks or holds
   with another digest (its state may be newer; the join decides).
3. `h.push {s, q, ns, states: [[key, state]]}` with the wanted states, in
   messages of bounded size; the receiver joins them into its store and
   answers `h.ack {s, q}` only once they are committed.
4. A page is confirmed when every receiver either wanted nothing or acked
   every push: each holds a state at least as new as the sender's. In a move
   the sender then drops each entry of the page whose digest is still the one
   it offered (`DropConfirmed`); an entry written meanwhile stays, and the
   next session hands it over.
5. After the last page, `h.done {s, ns, p}` tells the receivers the
   partition is complete as far as this sender goes (`PartitionFilled`).

Nothing is dropped on a timeout or a refusal, only on confirmation, so no
acknowledged write is lost while partitions move. Every message the sender
sends passes a token bucket of `handoff_rate` bytes per second, and at most
`handoff_concurrency` sessions run at once. The receiver keeps no state
between messages.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from swarmnode.errors import DecodeError
from swarmnode.placement.config import PlacementConfig
from swarmnode.replication.antientropy import encoded_size
from swarmnode.replication.merkle import DIGEST_BYTES, MerkleTree
from swarmnode.sansio import Address, Message, Output

MSG_OFFER = "h.offer"
MSG_WANT = "h.want"
MSG_PUSH = "h.push"
MSG_ACK = "h.ack"
MSG_DONE = "h.done"
MSG_FILL = "h.fill"
MSG_NOFILL = "h.nofill"
PUSH_BYTES = 256 * 1024
"""Bytes of states one push message carries at most (one state larger goes alone)."""
_MAX_ITEMS = 1 << 20
_IDS = 1 << 32


class HandoffSource(Protocol):
    """What the handoff reads from the local store (the node implements it)."""

    def tree(self, ns: str) -> MerkleTree | None: ...

    def entries_in_leaves(
        self, ns: str, first_leaf: int, last_leaf: int
    ) -> list[tuple[str, bytes]]: ...

    def states(self, ns: str, keys: list[str]) -> list[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class ApplyHandoff:
    """Join these states from `peer` into `ns`; then call `Handoff.applied(peer, s, q)`."""

    peer: Address
    session: int
    push: int
    ns: str
    states: list[tuple[str, bytes]]


@dataclass(frozen=True)
class DropConfirmed:
    """Every receiver holds these entries: drop each whose digest is still the given one."""

    ns: str
    partition: int
    items: list[tuple[str, bytes]]


@dataclass(frozen=True)
class PartitionFilled:
    """`peer` handed partition (ns, partition) over completely."""

    peer: Address
    ns: str
    partition: int


@dataclass(frozen=True)
class FillRequested:
    """`peer` owns (ns, partition) and asks for it."""

    peer: Address
    ns: str
    partition: int


@dataclass(frozen=True)
class FillRefused:
    """`peer` has nothing of (ns, partition) to give (or waits for it itself)."""

    peer: Address
    ns: str
    partition: int


@dataclass(frozen=True)
class SessionFinished:
    """A session this node sent is over (ok: every page confirmed by every receiver)."""

    ns: str
    partition: int
    targets: tuple[Address, ...]
    copy: bool
    ok: bool
    reason: str
    keys_offered: int
    keys_pushed: int
    bytes_sent: int
    duration: float


@dataclass
class _Page:
    lo: int
    hi: int
    items: list[tuple[str, bytes]]
    last: bool
    wanted: dict[Address, bool] = field(default_factory=dict)
    """Receiver -> whether its `want` arrived."""
    pushes: dict[Address, set[int]] = field(default_factory=dict)
    """Receiver -> push ids not yet acknowledged."""

    def confirmed(self) -> bool:
        return all(self.wanted.values()) and not any(self.pushes.values())


@dataclass
class _Session:
    id: int
    ns: str
    partition: int
    first: int
    last: int
    targets: tuple[Address, ...]
    copy: bool
    started: float
    deadline: float
    total: int
    cursor: int = 0
    page: _Page | None = None
    keys_offered: int = 0
    keys_pushed: int = 0
    bytes_sent: int = 0


class Handoff:
    """Both roles of the handoff protocol for one node."""

    def __init__(
        self, source: HandoffSource, config: PlacementConfig, rng: random.Random, now: float
    ) -> None:
        self._source = source
        self.config = config
        self._rng = rng
        self._sessions: dict[int, _Session] = {}
        self._next_id = rng.randrange(_IDS)
        self._next_push = 0
        self._tokens = float(config.handoff_rate)
        self._refilled = now
        self._held: deque[tuple[int, Address, Message, int]] = deque()
        """Messages waiting for the rate limit: (session, peer, message, bytes)."""
        self.bytes_sent = 0
        self.keys_received = 0
        self._handlers = {
            MSG_OFFER: self._on_offer,
            MSG_WANT: self._on_want,
            MSG_PUSH: self._on_push,
            MSG_ACK: self._on_ack,
            MSG_DONE: self._on_done,
            MSG_FILL: self._on_fill,
            MSG_NOFILL: self._on_nofill,
        }

    # --- what the node asks ------------------------------------------------------

    @property
    def active(self) -> int:
        return len(self._sessions)

    def has_room(self) -> bool:
        return len(self._sessions) < self.config.handoff_concurrency

    def sending(self, ns: str, partition: int) -> bool:
        return any(s.ns == ns and s.partition == partition for s in self._sessions.values())

    def start(
        self,
        now: float,
        ns: str,
        partition: int,
        leaves: tuple[int, int],
        targets: Sequence[Address],
        *,
        copy: bool,
    ) -> Output:
        """Hand partition (ns, partition), stored in `leaves`, to `targets`; a move drops
        what every target confirmed, a copy keeps it."""
        out = Output()
        sid = self._next_id
        self._next_id = (self._next_id + 1) % _IDS
        tree = self._source.tree(ns)
        total = tree.keys_in_leaves(*leaves) if tree is not None else 0
        session = _Session(
            sid,
            ns,
            partition,
            leaves[0],
            leaves[1],
            tuple(targets),
            copy,
            now,
            now + self.config.handoff_timeout,
            total,
            cursor=leaves[0],
        )
        self._sessions[sid] = session
        self._next_page(now, session, out)
        self._release(now, out)
        return out

    def progress(self, now: float) -> list[dict[str, Any]]:
        """The sessions this node is sending, for `status` and the log."""
        return [
            {
                "ns": s.ns,
                "partition": s.partition,
                "to": [f"{a[0]}:{a[1]}" for a in s.targets],
                "kind": "copy" if s.copy else "move",
                "keys_offered": s.keys_offered,
                "keys_total": s.total,
                "keys_pushed": s.keys_pushed,
                "bytes_sent": s.bytes_sent,
                "seconds": round(now - s.started, 3),
            }
            for s in self._sessions.values()
        ]

    def request_fill(self, peer: Address, ns: str, partition: int) -> Output:
        """Ask `peer` for a partition this node owns and waits for."""
        return Output(send=[(peer, {"t": MSG_FILL, "ns": ns, "p": partition})])

    def nothing_to_fill(self, peer: Address, ns: str, partition: int) -> Output:
        """Answer a fill request for a partition this node holds complete and empty: it is
        complete at the asker too (`h.done` of no session)."""
        return Output(send=[(peer, {"t": MSG_DONE, "s": 0, "ns": ns, "p": partition})])

    def refuse_fill(self, peer: Address, ns: str, partition: int) -> Output:
        return Output(send=[(peer, {"t": MSG_NOFILL, "ns": ns, "p": partition})])

    def applied(self, peer: Address, session: int, push: int) -> Output:
        """The states of push `push` from `peer` are committed here: acknowledge them."""
        return Output(send=[(peer, {"t": MSG_ACK, "s": session, "q": push})])

    def next_deadline(self) -> float | None:
        due = [s.deadline for s in self._sessions.values()]
        if self._held:
            due.append(self._refilled + max(0.0, -self._tokens) / self.config.handoff_rate)
        return min(due, default=None)

    def tick(self, now: float) -> Output:
        """Release what the rate limit allows; fail sessions whose receivers fell silent."""
        out = Output()
        self._release(now, out)
        for session in [s for s in self._sessions.values() if now >= s.deadline]:
            self._finish(now, session, False, "timeout", out)
        return out

    def receive(self, now: float, sender: Address, msg: Message) -> Output:
        """Handle one `h.*` message; raises DecodeError (only) if it is malformed."""
        kind = msg.get("t")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise DecodeError(f"unknown handoff message type {kind!r}")
        out = handler(now, sender, msg)
        self._release(now, out)
        return out

    # --- sender --------------------------------------------------------------------

    def _next_page(self, now: float, session: _Session, out: Output) -> None:
        if session.cursor > session.last:
            for target in session.targets:
                done = {"t": MSG_DONE, "s": session.id, "ns": session.ns, "p": session.partition}
                self._send(session, target, done)
            self._finish(now, session, True, "", out)
            return
        tree = self._source.tree(session.ns)
        lo = session.cursor
        if tree is None:
            hi, items = session.last, []
        else:
            hi = tree.split_leaves(lo, session.last, self.config.handoff_page_keys)
            items = self._source.entries_in_leaves(session.ns, lo, hi)
        page = _Page(lo, hi, items, hi == session.last)
        session.page = page
        session.keys_offered += len(items)
        offer = {
            "t": MSG_OFFER,
            "s": session.id,
            "ns": session.ns,
            "p": session.partition,
            "lo": lo,
            "hi": hi,
            "items": [[k, d] for k, d in items],
            "last": page.last,
        }
        for target in session.targets:
            page.wanted[target] = False
            page.pushes[target] = set()
            self._send(session, target, offer)

    def _on_want(self, now: float, sender: Address, msg: Message) -> Output:
        sid, lo = _uint(msg, "s"), _uint(msg, "lo")
        keys = [_str(k, "key") for k in _list(msg, "keys")]
        out = Output()
        session = self._sessions.get(sid)
        page = session.page if session is not None else None
        if session is None or page is None or page.lo != lo or sender not in page.wanted:
            return out
        if page.wanted[sender]:
            return out
        offered = {k for k, _ in page.items}
        if any(k not in offered for k in keys):
            raise DecodeError("h.want names keys that were not offered")
        page.wanted[sender] = True
        session.deadline = now + self.config.handoff_timeout
        if keys:
            states = self._source.states(session.ns, keys)
            batch: list[list[Any]] = []
            size = 0
            for key, state in states:
                grown = len(key) + len(state) + 8
                if batch and size + grown > PUSH_BYTES:
                    self._push(session, page, sender, batch)
                    batch, size = [], 0
                batch.append([key, state])
                size += grown
            if batch:
                self._push(session, page, sender, batch)
        self._settle_page(now, session, out)
        return out

    def _push(self, session: _Session, page: _Page, target: Address, batch: list[Any]) -> None:
        push_id = self._next_push
        self._next_push += 1
        page.pushes[target].add(push_id)
        session.keys_pushed += len(batch)
        msg = {"t": MSG_PUSH, "s": session.id, "q": push_id, "ns": session.ns, "states": batch}
        self._send(session, target, msg)

    def _on_ack(self, now: float, sender: Address, msg: Message) -> Output:
        sid, push_id = _uint(msg, "s"), _uint(msg, "q")
        out = Output()
        session = self._sessions.get(sid)
        page = session.page if session is not None else None
        if session is None or page is None or push_id not in page.pushes.get(sender, ()):
            return out
        page.pushes[sender].discard(push_id)
        session.deadline = now + self.config.handoff_timeout
        self._settle_page(now, session, out)
        return out

    def _settle_page(self, now: float, session: _Session, out: Output) -> None:
        page = session.page
        if page is None or not page.confirmed():
            return
        if not session.copy and page.items:
            out.events.append(DropConfirmed(session.ns, session.partition, list(page.items)))
        session.page = None
        session.cursor = page.hi + 1
        self._next_page(now, session, out)

    def _finish(self, now: float, session: _Session, ok: bool, reason: str, out: Output) -> None:
        self._sessions.pop(session.id, None)
        self._held = deque(h for h in self._held if h[0] != session.id or ok)
        out.events.append(
            SessionFinished(
                session.ns,
                session.partition,
                session.targets,
                session.copy,
                ok,
                reason,
                session.keys_offered,
                session.keys_pushed,
                session.bytes_sent,
                now - session.started,
            )
        )

    # --- rate limit -------------------------------------------------------------------

    def _send(self, session: _Session, peer: Address, msg: Message) -> None:
        size = encoded_size(msg)
        session.bytes_sent += size
        self._held.append((session.id, peer, msg, size))

    def _release(self, now: float, out: Output) -> None:
        rate = self.config.handoff_rate
        self._tokens = min(float(rate), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        while self._held and self._tokens > 0:
            sid, peer, msg, size = self._held.popleft()
            self._tokens -= size
            self.bytes_sent += size
            out.send.append((peer, msg))
            session = self._sessions.get(sid)
            if session is not None:
                session.deadline = now + self.config.handoff_timeout

    # --- receiver ------------------------------------------------------------------------

    def _on_offer(self, now: float, sender: Address, msg: Message) -> Output:
        sid, ns = _uint(msg, "s"), _str(msg.get("ns"), "ns")
        lo, hi = _uint(msg, "lo"), _uint(msg, "hi")
        if hi < lo:
            raise DecodeError("h.offer: hi below lo")
        items = []
        for raw in _list(msg, "items"):
            pair = _check_list(raw, "item", 2)
            digest = pair[1]
            if type(digest) is not bytes or len(digest) != DIGEST_BYTES:
                raise DecodeError("h.offer: a digest is not 16 bytes")
            items.append((_str(pair[0], "key"), digest))
        mine = dict(self._source.entries_in_leaves(ns, lo, hi)) if items else {}
        keys = [k for k, d in items if mine.get(k) != d]
        return Output(send=[(sender, {"t": MSG_WANT, "s": sid, "lo": lo, "keys": keys})])

    def _on_push(self, now: float, sender: Address, msg: Message) -> Output:
        sid, push_id, ns = _uint(msg, "s"), _uint(msg, "q"), _str(msg.get("ns"), "ns")
        states = []
        for raw in _list(msg, "states"):
            pair = _check_list(raw, "state", 2)
            if type(pair[1]) is not bytes:
                raise DecodeError("h.push: a state is not bytes")
            states.append((_str(pair[0], "key"), pair[1]))
        self.keys_received += len(states)
        return Output(events=[ApplyHandoff(sender, sid, push_id, ns, states)])

    def _on_done(self, now: float, sender: Address, msg: Message) -> Output:
        ns, partition = _str(msg.get("ns"), "ns"), _uint(msg, "p")
        return Output(events=[PartitionFilled(sender, ns, partition)])

    def _on_fill(self, now: float, sender: Address, msg: Message) -> Output:
        ns, partition = _str(msg.get("ns"), "ns"), _uint(msg, "p")
        return Output(events=[FillRequested(sender, ns, partition)])

    def _on_nofill(self, now: float, sender: Address, msg: Message) -> Output:
        ns, partition = _str(msg.get("ns"), "ns"), _uint(msg, "p")
        return Output(events=[FillRefused(sender, ns, partition)])


def _uint(msg: Message, name: str) -> int:
    value = msg.get(name)
    if type(value) is not int or not 0 <= value < 1 << 63:
        raise DecodeError(f"handoff: {name} is not an unsigned integer")
    return value


def _str(value: Any, what: str) -> str:
    if type(value) is not str:
        raise DecodeError(f"handoff: {what} is not a string")
    return value


def _list(msg: Message, name: str) -> Sequence[Any]:
    return _check_list(msg.get(name), name)


def _check_list(value: Any, what: str, length: int | None = None) -> Sequence[Any]:
    if not isinstance(value, list | tuple) or len(value) > _MAX_ITEMS:
        raise DecodeError(f"handoff: {what} is not an array")
    if length is not None and len(value) != length:
        raise DecodeError(f"handoff: {what} has {len(value)} elements, not {length}")
    return value
