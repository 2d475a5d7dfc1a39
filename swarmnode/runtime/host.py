"""The runtime protocol, and the one host that drives a node under it.

A `Node` is a Step/Ready machine; something must feed it steps and carry out
its Readys. `NodeHost` does that on an asyncio event loop, and it is the same
code for real and for simulated runs: what differs is plugged in.

- `Clock`: monotonic seconds for protocol timers, wall-clock milliseconds for
  HLC and TTLs (the real ones, or the simulator's virtual ones with skew).
- `Transport`: puts messages on the network (the sealed UDP/TCP endpoint, or
  the simulated network).
- `Committer`: makes a batch durable and hands the results back as a later
  step (the group-commit writer thread, or the simulator's virtual-time one).
- The event loop itself: uvloop for real, the simulator's virtual-time loop
  in simulations, so the service layer's coroutines run unchanged in both.

Clients reach the node through `write` and `sync`, which return when the node
replies; everything else the service layer needs (reads) goes to the store.
Several steps in one turn of the loop share one Ready, so fifty clients'
writes reach the committer as one batch, and so do the gossip messages of the
datagrams read in one turn (`take_message`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from swarmnode.metrics import Registry
from swarmnode.node import Node, Ready, SyncReport
from swarmnode.routing.rpc import IncomingCall
from swarmnode.sansio import Address, Message
from swarmnode.storage.ops import Change, Op, OpResult
from swarmnode.storage.writer import Committed, Committer

log = logging.getLogger("swarmnode.runtime")

ChangeListener = Callable[[Change], None]
CallHandler = Callable[[IncomingCall], None]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: protocol timers."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the epoch: what is visible, what has expired, HLC input."""
        ...


class Transport(Protocol):
    def send(self, addr: Address, msgs: list[Message]) -> None:
        """Send messages to one peer (packed into datagrams, or a stream when large)."""
        ...


class NodeHost:
    """Feeds a node its steps and carries out its Readys; one per node."""

    def __init__(
        self,
        node: Node,
        committer: Committer,
        transport: Transport,
        clock: Clock,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.node = node
        self.committer = committer
        self.transport = transport
        self.clock = clock
        self.loop = loop
        self._listeners: list[ChangeListener] = []
        self.call_handler: CallHandler | None = None
        """Runs requests peers forward here (the routing layer sets it)."""
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._tokens = itertools.count(1)
        self._scheduled = False
        self.closed = False
        self.stepped: Callable[[], None] | None = None
        """Called after every batch of steps is carried out (the real runtime's ticker
        moves its wake-up earlier when a step brought a timer closer)."""

    # --- steps from the runtime ---------------------------------------------------

    def start(self, seeds: list[Address]) -> None:
        self.node.start(self.clock.monotonic(), seeds)
        self.process()

    def leave(self) -> None:
        self.node.leave(self.clock.monotonic())
        self.process()

    def tick(self) -> None:
        self.node.tick(self.clock.monotonic())
        self.process()

    def on_message(self, sender: Address, msg: Message) -> None:
        """One message, carried out before this returns (the simulator's step)."""
        self.node.receive(self.clock.monotonic(), sender, msg)
        self.process()

    def take_message(self, sender: Address, msg: Message) -> None:
        """One message the node takes now; what it asks for is carried out at the loop's
        next turn, in one Ready with everything else that arrived in this one.

        The real runtime's gossip arrives in bursts: a busy peer read 18 datagrams per
        turn of the loop on average at 3 nodes (issue 16), and carrying out each one's
        Ready apart cost a batch hand-off to the writer thread and a new wake-up deadline
        per datagram. Client writes share a Ready the same way (`submit`)."""
        self.node.receive(self.clock.monotonic(), sender, msg)
        self._schedule()

    def on_committed(self, committed: Committed) -> None:
        """Results of one transaction (on the loop thread): one `persisted` step per batch."""
        if self.closed:
            return
        for batch, results in committed:
            self.node.persisted(batch, results)
        self.process()

    # --- what clients ask of the node ---------------------------------------------

    def submit(self, op: Op) -> asyncio.Future[OpResult]:
        """Propose a write; the future gets its OpResult once it is durable."""
        token = next(self._tokens)
        fut: asyncio.Future[OpResult] = self.loop.create_future()
        self._waiting[token] = fut
        self.node.propose(op, token)
        self._schedule()
        return fut

    async def write(self, op: Op) -> OpResult:
        return await self.submit(op)

    async def command(self, command: bytes) -> Any:
        """A command for the consensus group; its result map (raises `Unavailable` when the
        group cannot settle it in time: the outcome is then unknown)."""
        return await self._ask(lambda token: self.node.propose_command(token, command))

    async def read_linearizable(self, ns: str, key: str) -> Any:
        """The consensus group's register (ns, key) as of now: `machine.ABSENT` if none."""
        return await self._ask(lambda token: self.node.read_linearizable(token, ns, key))

    async def _ask(self, step: Callable[[int], None]) -> Any:
        token = next(self._tokens)
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._waiting[token] = fut
        step(token)
        self._schedule()
        result = await fut
        if isinstance(result, BaseException):
            raise result
        return result

    async def call(self, peer: Address, body: Any, timeout: float) -> Any:
        """Forward a request to a peer and wait for its answer's body (`rpc.TIMED_OUT` when
        none came within `timeout`)."""
        answered = await self.start_call(peer, body, timeout)
        return answered.body

    def start_call(self, peer: Address, body: Any, timeout: float) -> asyncio.Future[Any]:
        """Forward a request to a peer now, without waiting: the future gets its
        `CallAnswered`. A scatter sends all its calls before it does its own share."""
        token = next(self._tokens)
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._waiting[token] = fut
        self.node.call_peer(token, peer, body, timeout)
        self._schedule()
        return fut

    def flush(self) -> None:
        """Carry out what the node has now (send the calls just made) rather than at the
        loop's next turn: for a caller about to hold the loop with work of its own."""
        self.process()

    def answer(self, call: IncomingCall, body: Any) -> None:
        """Answer a request a peer forwarded here."""
        if self.closed:
            return
        self.node.answer(call, body)
        self._schedule()

    async def sync(self, peer: Address | None = None) -> SyncReport:
        token = next(self._tokens)
        fut: asyncio.Future[SyncReport] = self.loop.create_future()
        self._waiting[token] = fut
        self.node.sync(self.clock.monotonic(), token, peer)
        self.process()
        return await fut

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` with every committed change, in order; returns the unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # --- carrying out Readys ---------------------------------------------------------

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.process)

    def process(self) -> None:
        """Carry out every Ready the node has: persist, send, reply, announce."""
        self._scheduled = False
        if self.closed:
            return
        node = self.node
        while node.has_ready():
            rd = node.ready()
            self._carry_out(rd)
            node.advance(rd)
        if self.stepped is not None:
            self.stepped()

    def _carry_out(self, rd: Ready) -> None:
        if rd.batch:
            self.committer.submit(rd.batch, rd.writes, rd.raft)
        if rd.messages:
            by_peer: dict[Address, list[Message]] = {}
            for addr, msg in rd.messages:
                by_peer.setdefault(addr, []).append(msg)
            for addr, msgs in by_peer.items():
                try:
                    self.transport.send(addr, msgs)
                except ValueError as exc:
                    log.error("event=send_refused peer=%s:%s error=%s", *addr, exc)
        for token, result in rd.replies:
            fut = self._waiting.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_result(result)
        for change in rd.changes:
            for listener in list(self._listeners):
                try:
                    listener(change)
                except Exception:
                    log.exception("event=listener_failed")
        for call in rd.calls:
            if self.call_handler is not None:
                self.call_handler(call)

    def close(self) -> None:
        """Stop carrying out Readys; whoever still waits gets `unavailable`."""
        from swarmnode.errors import Unavailable

        self.closed = True
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(Unavailable("node is shutting down"))
        self._waiting.clear()

    @property
    def metrics(self) -> Registry:
        """The node's registry, where every layer of this node counts."""
        return self.node.metrics

    def stats(self) -> dict[str, Any]:
        """The node's `stats`; a committer that does not count in the registry (the
        simulator's) gives its `writer` section itself."""
        tree = self.node.stats()
        if "writer" not in tree:
            tree["writer"] = self.committer.stats()
        return tree
