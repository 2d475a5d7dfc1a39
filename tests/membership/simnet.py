"""A deterministic in-test network that drives `Membership` nodes in virtual time.

Deliveries and ticks sit in one priority queue ordered by virtual time; every
random choice (latency, loss, each node's own generator) derives from one seed,
so a scenario replays exactly. Messages cross the wire as msgpack bytes, as
they will for real, and every message but push-pull must fit one datagram.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from swarmnode.membership import Membership, MembershipConfig, MemberState
from swarmnode.sansio import Address, Output

DATAGRAM_BYTES = 1400
ENVELOPE_BYTES = 64
"""Room left for the transport header and the encryption envelope (nonce, tag)."""


def addr_of(i: int) -> Address:
    return (f"127.0.{i // 250}.{i % 250 + 1}", 7946)


@dataclass
class Counters:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    bytes: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class SimNet:
    """Virtual clock, virtual links, and the nodes attached to them."""

    def __init__(
        self,
        seed: int,
        config: MembershipConfig | None = None,
        *,
        latency: tuple[float, float] = (0.0005, 0.002),
        loss: float = 0.0,
        check_invariants: bool = True,
        record: bool = False,
    ) -> None:
        self.seed = seed
        self.config = config or MembershipConfig.local()
        self.latency = latency
        self.loss = loss
        self.check_invariants = check_invariants
        self.now = 0.0
        self.nodes: dict[Address, Membership] = {}
        self.events: list[tuple[float, str, Any]] = []
        self.counters = Counters()
        self._rng = random.Random(seed)
        self._heap: list[tuple[float, int, str, Address, Any]] = []
        self._order = itertools.count()
        self._tick_at: dict[Address, float] = {}
        self._generation: dict[Address, int] = {}
        self._group: dict[Address, int] = {}
        self._link_loss: dict[tuple[Address, Address], float] = {}
        self.record = record
        self.sent: list[tuple[float, Address, Address, dict[str, Any]]] = []
        """With `record`, every message handed to the network: (time, from, to, message)."""

    # ---------------------------------------------------------------- cluster control

    def add(
        self,
        node_id: str,
        addr: Address,
        meta: dict[str, Any] | None = None,
        config: MembershipConfig | None = None,
    ) -> Membership:
        """Start a node; `config` (default: the network's) lets one node differ."""
        assert addr not in self.nodes, f"{addr} is running"
        generation = self._generation.get(addr, 0) + 1
        self._generation[addr] = generation
        rng = random.Random(f"{self.seed}/{node_id}/{addr}/{generation}")
        node = Membership(node_id, addr, config or self.config, rng, meta)
        self.nodes[addr] = node
        return node

    def join(self, addr: Address, seeds: Iterable[Address]) -> None:
        node = self.nodes[addr]
        self._carry_out(addr, node.join(self.now, list(seeds)))

    def start_cluster(self, n: int, *, seeds: int = 1, prefix: str = "n") -> list[Address]:
        """Start n nodes that all join through the first `seeds` of them."""
        addrs = [addr_of(i) for i in range(n)]
        for i, addr in enumerate(addrs):
            self.add(f"{prefix}{i}", addr)
        for addr in addrs:
            self.join(addr, addrs[:seeds])
        return addrs

    def crash(self, addr: Address) -> Membership:
        """Stop a node without a word; what is in flight to it is lost."""
        self._tick_at.pop(addr, None)
        return self.nodes.pop(addr)

    def leave(self, addr: Address) -> None:
        self._carry_out(addr, self.nodes[addr].leave(self.now))

    def partition(self, *groups: Iterable[Address]) -> None:
        """Only nodes in the same group hear each other; unlisted nodes form group 0."""
        self._group = {addr: index + 1 for index, group in enumerate(groups) for addr in group}

    def heal(self) -> None:
        self._group = {}

    def set_link_loss(self, a: Address, b: Address, loss: float) -> None:
        """Drop this share of packets between a and b, both ways."""
        self._link_loss[(a, b)] = loss
        self._link_loss[(b, a)] = loss

    def inject(self, src: Address, dst: Address, msg: dict[str, Any]) -> Output:
        """Hand one message to a node directly, as if `src` sent it."""
        out = self.nodes[dst].receive(self.now, src, msg)
        self._carry_out(dst, out)
        return out

    # ---------------------------------------------------------------- running

    def run_for(self, seconds: float) -> None:
        self.run_until_time(self.now + seconds)

    def run_until_time(self, end: float) -> None:
        same_time_steps = 0
        while self._heap and self._heap[0][0] <= end:
            when, _, kind, addr, payload = heapq.heappop(self._heap)
            same_time_steps = same_time_steps + 1 if when == self.now else 0
            assert same_time_steps < 100_000, f"no progress at t={when} (seed {self.seed})"
            self.now = when
            if kind == "tick":
                self._on_tick(addr, when)
            else:
                self._on_delivery(addr, payload)
        self.now = max(self.now, end)

    def run_until(self, done: Callable[[], bool], *, within: float, every: float = 0.1) -> float:
        """Run until `done()` holds (checked every `every` virtual seconds); the time it took."""
        start = self.now
        while not done():
            assert self.now - start < within, (
                f"not reached within {within}s of virtual time (seed {self.seed})"
            )
            self.run_for(every)
        return self.now - start

    # ---------------------------------------------------------------- views

    def view(self, addr: Address) -> dict[str, MemberState]:
        return {m.node_id: m.state for m in self.nodes[addr].members()}

    def all_see(self, node_ids: Iterable[str], state: MemberState) -> bool:
        """Every running node holds each of `node_ids` (other than itself) in `state`."""
        wanted = list(node_ids)
        for node in self.nodes.values():
            for node_id in wanted:
                info = node.member(node_id)
                if node_id != node.node_id and (info is None or info.state is not state):
                    return False
        return True

    def converged(self) -> bool:
        """Every running node sees exactly the running nodes as alive, all others not live."""
        running = {node.node_id for node in self.nodes.values()}
        for node in self.nodes.values():
            alive = {m.node_id for m in node.members() if m.state is MemberState.ALIVE}
            live = {m.node_id for m in node.members() if m.state.live}
            if alive != running or live != running:
                return False
        return True

    def events_of(self, kind: type, node_id: str | None = None) -> list[tuple[float, str, Any]]:
        return [
            (when, who, event)
            for when, who, event in self.events
            if isinstance(event, kind) and (node_id is None or event.node_id == node_id)
        ]

    # ---------------------------------------------------------------- internals

    def _on_tick(self, addr: Address, when: float) -> None:
        if self._tick_at.get(addr) != when or addr not in self.nodes:
            return
        del self._tick_at[addr]
        self._carry_out(addr, self.nodes[addr].tick(self.now))

    def _on_delivery(self, dst: Address, payload: tuple[Address, bytes]) -> None:
        src, raw = payload
        node = self.nodes.get(dst)
        if node is None:
            self.counters.dropped += 1
            return
        self.counters.delivered += 1
        msg = msgpack.unpackb(raw)
        self._carry_out(dst, node.receive(self.now, src, msg))

    def _carry_out(self, addr: Address, out: Output) -> None:
        node = self.nodes[addr]
        for event in out.events:
            self.events.append((self.now, node.node_id, event))
        for dst, msg in out.send:
            self._transmit(addr, dst, msg)
        if self.check_invariants:
            node.assert_invariants()
        deadline = node.next_deadline()
        if deadline is not None and self._tick_at.get(addr) != deadline:
            deadline = max(deadline, self.now)
            self._tick_at[addr] = deadline
            heapq.heappush(self._heap, (deadline, next(self._order), "tick", addr, None))

    def _transmit(self, src: Address, dst: Address, msg: dict[str, Any]) -> None:
        raw = msgpack.packb(msg)
        if self.record:
            self.sent.append((self.now, src, dst, msg))
        if msg["t"] != "swim.pp":
            assert len(raw) <= DATAGRAM_BYTES - ENVELOPE_BYTES, f"{msg['t']} of {len(raw)} bytes"
        counters = self.counters
        counters.sent += 1
        counters.bytes += len(raw)
        counters.by_type[msg["t"]] = counters.by_type.get(msg["t"], 0) + 1
        if self._group and self._group.get(src, 0) != self._group.get(dst, 0):
            counters.dropped += 1
            return
        loss = max(self.loss, self._link_loss.get((src, dst), 0.0))
        if loss and self._rng.random() < loss:
            counters.dropped += 1
            return
        when = self.now + self._rng.uniform(*self.latency)
        heapq.heappush(self._heap, (when, next(self._order), "deliver", dst, (src, raw)))
