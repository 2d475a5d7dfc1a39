"""Calls between nodes: a request, its answer, and a deadline, as a sans-IO state machine.

`rq.call {i, b}` carries a body to a peer, which answers `rq.reply {i, b}`
with the same id. A call the network delivers twice is run once: the callee
remembers the ids it has seen from each peer (the last `SEEN` of them), since
running a forwarded write twice would write twice. The caller gives each call
a token and a timeout; the answer or, at the deadline, `TIMED_OUT` comes back
as a `CallAnswered` event for that token. The callee gets `IncomingCall` events and answers
with `reply`. Bodies are msgpack-able maps; what they mean is the routing
layer's business. Each peer's round-trip time is kept (an exponentially
weighted mean of answered calls), so the caller can try the nearest owner
first.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from swarmnode.errors import DecodeError
from swarmnode.sansio import Address, Message, Output

MSG_CALL = "rq.call"
MSG_REPLY = "rq.reply"
TIMED_OUT = object()
"""The answer of a call whose deadline passed (the callee may still have acted on it)."""
_IDS = 1 << 62
RTT_WEIGHT = 0.2
"""Weight of the newest sample in a peer's round-trip mean."""
SEEN = 4096
"""Call ids remembered per peer, to drop duplicates (far more than calls in flight)."""


@dataclass(frozen=True)
class IncomingCall:
    peer: Address
    call_id: int
    body: Any


@dataclass(frozen=True)
class CallAnswered:
    token: int
    peer: Address
    body: Any
    """The answer's body, or `TIMED_OUT`."""


@dataclass
class _Pending:
    token: int
    peer: Address
    sent: float
    deadline: float


class Calls:
    def __init__(self, rng: random.Random) -> None:
        self._next = rng.randrange(_IDS)
        self._pending: dict[int, _Pending] = {}
        self.rtt: dict[Address, float] = {}
        """Mean round trip of answered calls, by peer (seconds)."""
        self._seen: dict[Address, OrderedDict[int, None]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def load(self) -> dict[Address, int]:
        """Calls in flight per peer."""
        out: dict[Address, int] = {}
        for p in self._pending.values():
            out[p.peer] = out.get(p.peer, 0) + 1
        return out

    def call(self, now: float, token: int, peer: Address, body: Any, timeout: float) -> Output:
        call_id = self._next
        self._next = (self._next + 1) % _IDS
        self._pending[call_id] = _Pending(token, peer, now, now + timeout)
        return Output(send=[(peer, {"t": MSG_CALL, "i": call_id, "b": body})])

    def reply(self, peer: Address, call_id: int, body: Any) -> Output:
        return Output(send=[(peer, {"t": MSG_REPLY, "i": call_id, "b": body})])

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self._pending.values()), default=None)

    def tick(self, now: float) -> Output:
        out = Output()
        for call_id in [i for i, p in self._pending.items() if now >= p.deadline]:
            p = self._pending.pop(call_id)
            out.events.append(CallAnswered(p.token, p.peer, TIMED_OUT))
        return out

    def receive(self, now: float, sender: Address, msg: Message) -> Output:
        """Handle one `rq.*` message; raises DecodeError (only) if it is malformed."""
        call_id = msg.get("i")
        if type(call_id) is not int or not 0 <= call_id < _IDS or "b" not in msg:
            raise DecodeError("rq: a call id and a body are required")
        kind = msg.get("t")
        if kind == MSG_CALL:
            seen = self._seen.setdefault(sender, OrderedDict())
            if call_id in seen:
                return Output()
            seen[call_id] = None
            if len(seen) > SEEN:
                seen.popitem(last=False)
            return Output(events=[IncomingCall(sender, call_id, msg["b"])])
        if kind != MSG_REPLY:
            raise DecodeError(f"unknown call message type {kind!r}")
        pending = self._pending.get(call_id)
        if pending is None or pending.peer != sender:
            return Output()  # late (timed out already) or stray
        del self._pending[call_id]
        sample = now - pending.sent
        old = self.rtt.get(sender)
        self.rtt[sender] = sample if old is None else old + RTT_WEIGHT * (sample - old)
        return Output(events=[CallAnswered(pending.token, sender, msg["b"])])
