"""A virtual network between node addresses: latency, loss, duplication, reordering, cuts.

Messages cross it as they cross the real transport: what one node sends to one
peer in one flush is packed into datagram payloads by the transport's own
`pack_messages` (so message size limits and unserialisable messages fail here
as they would for real) and unpacked by `unpack_datagram` on delivery. Byte
counts include the encryption envelope a keyed cluster adds to every packet.

Datagrams suffer the link's faults; a payload too large for any datagram goes
over a stream, which in this model is reliable and ordered on a connected
link and lost on a cut one. Partitions are checked when a packet leaves and
again when it arrives, so a cut also loses what was in flight.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from swarmnode.replication.dissemination import MSG_DELTAS
from swarmnode.sansio import Address, Message
from swarmnode.transport.envelope import SEALED_OVERHEAD
from swarmnode.transport.packing import pack_messages, unpack_datagram

Handler = Callable[[Address, Message], None]


@dataclass(frozen=True)
class Latency:
    """One-way delay of a link, in seconds, drawn per packet.

    `shape` is "fixed" (always `median`), "uniform" (between median*(1-spread)
    and median*(1+spread)) or "lognormal" (median*exp(spread*N(0,1)), capped at
    ten times the median: a long tail, as on busy links).
    """

    median: float = 0.001
    spread: float = 0.5
    shape: str = "uniform"

    def __post_init__(self) -> None:
        if self.shape not in ("fixed", "uniform", "lognormal"):
            raise ValueError(f"latency shape must be fixed, uniform or lognormal, not {self.shape}")
        if self.median < 0 or self.spread < 0:
            raise ValueError("latency median and spread must be >= 0")

    def sample(self, rng: random.Random) -> float:
        if self.shape == "fixed" or self.spread == 0:
            return self.median
        if self.shape == "uniform":
            spread = min(self.spread, 1.0)
            return self.median * rng.uniform(1 - spread, 1 + spread)
        return min(self.median * math.exp(self.spread * rng.gauss(0.0, 1.0)), 10 * self.median)


@dataclass(frozen=True)
class LinkProfile:
    """What one directed link does to datagrams."""

    latency: Latency = field(default_factory=Latency)
    # Share of datagrams dropped.
    loss: float = 0.0
    # Share of datagrams delivered twice (the copy after a second latency draw).
    duplicate: float = 0.0
    # Share of datagrams held back `reorder_delay` seconds extra, so later ones overtake them.
    reorder: float = 0.0
    reorder_delay: float = 0.02
    # Share of datagrams delivered once more `late_delay` seconds later: a duplicate the
    # network held back. Only its gossip deltas are delivered (see `_arrive_late`): later
    # than the tombstone grace they test the store's causal horizon.
    late_duplicate: float = 0.0
    late_delay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "late_duplicate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1")


@dataclass
class NetStats:
    """Counts since the network was created (or since `reset`)."""

    messages: int = 0
    datagrams: int = 0
    streamed: int = 0
    bytes: int = 0
    delivered_messages: int = 0
    dropped_loss: int = 0
    dropped_cut: int = 0
    dropped_down: int = 0
    duplicated: int = 0
    late_duplicates: int = 0
    by_type: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> NetStats:
        return NetStats(
            self.messages,
            self.datagrams,
            self.streamed,
            self.bytes,
            self.delivered_messages,
            self.dropped_loss,
            self.dropped_cut,
            self.dropped_down,
            self.duplicated,
            self.late_duplicates,
            Counter(self.by_type),
        )


class Network:
    """Links between attached addresses; `send` schedules deliveries on the event loop."""

    def __init__(
        self,
        call_later: Callable[..., None],
        rng: random.Random,
        profile: LinkProfile | None = None,
        *,
        max_datagram: int = 1400,
    ) -> None:
        self._call_later = call_later
        self._rng = rng
        self.default = profile or LinkProfile()
        self._budget = max_datagram - SEALED_OVERHEAD
        self._handlers: dict[Address, Handler] = {}
        self._links: dict[tuple[Address, Address], LinkProfile] = {}
        self._group: dict[Address, int] = {}
        self._one_way: list[tuple[frozenset[Address], frozenset[Address]]] = []
        self.stats = NetStats()

    # --- endpoints -------------------------------------------------------------

    def attach(self, addr: Address, handler: Handler) -> None:
        self._handlers[addr] = handler

    def detach(self, addr: Address) -> None:
        self._handlers.pop(addr, None)

    # --- faults ----------------------------------------------------------------

    def set_link(self, a: Address, b: Address, profile: LinkProfile, *, both: bool = True) -> None:
        self._links[(a, b)] = profile
        if both:
            self._links[(b, a)] = profile

    def clear_links(self) -> None:
        self._links.clear()

    def partition(self, *groups: Iterable[Address]) -> None:
        """Only members of one group hear each other; addresses in no group form one more."""
        self._group = {addr: i + 1 for i, group in enumerate(groups) for addr in group}

    def cut_one_way(self, sources: Iterable[Address], destinations: Iterable[Address]) -> None:
        """Lose every packet from `sources` to `destinations`; the reverse direction works."""
        self._one_way.append((frozenset(sources), frozenset(destinations)))

    def heal(self) -> None:
        """Remove every partition and one-way cut (link profiles stay)."""
        self._group = {}
        self._one_way = []

    def connected(self, src: Address, dst: Address) -> bool:
        group = self._group
        if group and group.get(src, 0) != group.get(dst, 0):
            return False
        return not any(src in s and dst in d for s, d in self._one_way)

    # --- traffic ---------------------------------------------------------------

    def send(self, src: Address, dst: Address, messages: list[Message]) -> None:
        """What `src` sends `dst` in one flush: packed into datagrams, then exposed to faults."""
        packing = pack_messages(messages, self._budget)
        stats = self.stats
        for msg in messages:
            stats.by_type[msg["t"]] += 1
        stats.messages += len(messages)
        profile = self._links.get((src, dst), self.default)
        rng = self._rng
        for payload in packing.datagrams:
            size = len(payload) + SEALED_OVERHEAD
            stats.datagrams += 1
            stats.bytes += size
            if not self.connected(src, dst):
                stats.dropped_cut += 1
                continue
            if profile.loss and rng.random() < profile.loss:
                stats.dropped_loss += 1
                continue
            delay = profile.latency.sample(rng)
            if profile.reorder and rng.random() < profile.reorder:
                delay += profile.reorder_delay
            self._call_later(delay, self._arrive, src, dst, payload)
            if profile.duplicate and rng.random() < profile.duplicate:
                stats.duplicated += 1
                self._call_later(profile.latency.sample(rng), self._arrive, src, dst, payload)
            if profile.late_duplicate and rng.random() < profile.late_duplicate:
                stats.late_duplicates += 1
                late = profile.late_delay + profile.latency.sample(rng)
                self._call_later(late, self._arrive_late, src, dst, payload)
        for payload in packing.streamed:
            size = len(payload) + SEALED_OVERHEAD
            stats.streamed += 1
            stats.bytes += size
            if not self.connected(src, dst):
                stats.dropped_cut += 1
                continue
            self._call_later(profile.latency.sample(rng), self._arrive, src, dst, payload)

    def _arrive_late(self, src: Address, dst: Address, payload: bytes) -> None:
        """A late copy: only its gossip deltas get through. The real transport drops every
        datagram older than its replay window; the deltas are let through here on purpose,
        so that the store's causal horizon, the last line of defence, is what is tested."""
        messages = [m for m in unpack_datagram(payload) if m.get("t") == MSG_DELTAS]
        if messages:
            self._deliver_messages(src, dst, messages)

    def _arrive(self, src: Address, dst: Address, payload: bytes) -> None:
        if not self.connected(src, dst):
            self.stats.dropped_cut += 1
            return
        self._deliver_messages(src, dst, unpack_datagram(payload))

    def _deliver_messages(self, src: Address, dst: Address, messages: list[Message]) -> None:
        if not self.connected(src, dst):
            self.stats.dropped_cut += 1
            return
        handler = self._handlers.get(dst)
        if handler is None:
            self.stats.dropped_down += 1
            return
        self.stats.delivered_messages += len(messages)
        for msg in messages:
            handler(src, msg)
