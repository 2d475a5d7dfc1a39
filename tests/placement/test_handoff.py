"""The handoff protocol between in-memory replicas, through its sans-IO interface.

Messages cross msgpack as on the wire; `ApplyHandoff` is joined into the
receiver (a max() join) and acknowledged, `DropConfirmed` drops from the
sender what is unchanged, as the node does with its store.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgpack

from swarmnode.placement.config import PlacementConfig
from swarmnode.placement.handoff import (
    ApplyHandoff,
    DropConfirmed,
    Handoff,
    PartitionFilled,
    SessionFinished,
)
from swarmnode.placement.hashing import partition_leaves, partition_of
from swarmnode.replication.antientropy_memory import MemoryEntrySource, state_digest
from swarmnode.replication.merkle import DEFAULT_LEAF_BITS
from swarmnode.sansio import Address, Message

A: Address = ("10.0.0.1", 7117)
B: Address = ("10.0.0.2", 7117)
C: Address = ("10.0.0.3", 7117)
NS, PARTITIONS = "mem", 16


def join(ours: bytes, theirs: bytes) -> bytes:
    return max(ours, theirs)


def keys_in(partition: int, n: int) -> list[str]:
    out, i = [], 0
    while len(out) < n:
        key = f"k{i}"
        if partition_of(key, PARTITIONS) == partition:
            out.append(key)
        i += 1
    return out


class Net:
    def __init__(self, config: PlacementConfig, sources: dict[Address, MemoryEntrySource]) -> None:
        self.now = 0.0
        self.sources = sources
        self.nodes = {
            addr: Handoff(src, config, random.Random(i), 0.0)
            for i, (addr, src) in enumerate(sources.items())
        }
        self.wire: list[tuple[Address, Address, Message]] = []
        self.finished: list[SessionFinished] = []
        self.filled: list[tuple[Address, PartitionFilled]] = []
        self.dropped = 0
        self.silent: set[Address] = set()
        self.sent_bytes: list[tuple[float, int]] = []
        self.between: Callable[[list[tuple[Address, Address, Message]]], None] = lambda w: None

    def carry(self, src: Address, out) -> None:
        for dst, msg in out.send:
            self.sent_bytes.append((self.now, len(msgpack.packb(msg, use_bin_type=True))))
            self.wire.append((src, dst, msg))
        for ev in out.events:
            if isinstance(ev, ApplyHandoff):
                self.sources[src].apply(ev.ns, ev.states)
                self.carry(src, self.nodes[src].applied(ev.peer, ev.session, ev.push))
            elif isinstance(ev, DropConfirmed):
                for key, digest in ev.items:
                    held = self.sources[src].get(ev.ns, key)
                    if held is not None and state_digest(held) == digest:
                        self.sources[src].remove(ev.ns, key)
                        self.dropped += 1
            elif isinstance(ev, SessionFinished):
                self.finished.append(ev)
            elif isinstance(ev, PartitionFilled):
                self.filled.append((src, ev))

    def run(self, until: float = 60.0, step: float = 0.01) -> None:
        while self.now < until and (self.wire or any(h.active for h in self.nodes.values())):
            wire, self.wire = self.wire, []
            self.now += step
            self.between(wire)
            for src, dst, msg in wire:
                if dst in self.silent:
                    continue
                decoded = msgpack.unpackb(msgpack.packb(msg, use_bin_type=True), raw=False)
                self.carry(dst, self.nodes[dst].receive(self.now, src, decoded))
            for addr, node in self.nodes.items():
                self.carry(addr, node.tick(self.now))


def start(net: Net, partition: int, targets: list[Address], copy: bool = False) -> None:
    leaves = partition_leaves(partition, PARTITIONS, DEFAULT_LEAF_BITS)
    net.carry(A, net.nodes[A].start(net.now, NS, partition, leaves, targets, copy=copy))


def sources(a_keys: list[str], **others: list[str]) -> dict[Address, MemoryEntrySource]:
    out = {A: MemoryEntrySource.build(join, {NS: [(k, f"a:{k}".encode()) for k in a_keys]})}
    for name, addr in (("b", B), ("c", C)):
        out[addr] = MemoryEntrySource.build(
            join, {NS: [(k, f"{name}:{k}".encode()) for k in others.get(name, [])]}
        )
    return out


def test_a_move_gives_every_receiver_the_partition_and_then_drops_it() -> None:
    keys = keys_in(3, 1200)
    other = keys_in(4, 50)
    srcs = sources(keys + other, c=keys[100:150])
    srcs[C].apply(NS, [(k, f"a:{k}".encode()) for k in keys[:100]])
    net = Net(PlacementConfig(handoff_page_keys=100), srcs)
    start(net, 3, [B, C])
    net.run()
    assert [f.ok for f in net.finished] == [True]
    for addr in (B, C):
        held = srcs[addr].items(NS)
        for k in keys:
            assert held[k] >= f"a:{k}".encode()
    assert set(srcs[A].items(NS)) == set(other)  # the partition is gone, the rest stays
    assert net.dropped == len(keys)
    assert {(dst, ev.partition) for dst, ev in net.filled} == {(B, 3), (C, 3)}
    # C held 100 keys in the very same state: only those are not pushed to it (50 others
    # it held differently: the receiver cannot tell which is newer, the join can).
    assert net.finished[0].keys_pushed == 1200 + 1100
    assert all(srcs[C].get(NS, k) == f"c:{k}".encode() for k in keys[100:150])


def test_an_entry_written_during_the_move_is_kept_for_the_next_one() -> None:
    keys = keys_in(5, 300)
    srcs = sources(keys)
    net = Net(PlacementConfig(handoff_page_keys=50), srcs)
    rewritten = keys[10]

    def write_once(wire: list[tuple[Address, Address, Message]]) -> None:
        # Rewritten just after its page was offered, before the receiver answers.
        for _, _, msg in wire:
            if msg["t"] == "h.offer" and any(k == rewritten for k, _ in msg["items"]):
                srcs[A].put(NS, rewritten, b"z-newer")

    net.between = write_once
    start(net, 5, [B])
    net.run()
    assert net.finished[0].ok
    assert srcs[A].items(NS) == {rewritten: b"z-newer"}
    assert srcs[B].get(NS, rewritten) == b"z-newer"  # read when wanted, so the newest went


def test_nothing_is_dropped_when_a_receiver_falls_silent() -> None:
    keys = keys_in(7, 200)
    srcs = sources(keys)
    net = Net(PlacementConfig(handoff_page_keys=50, handoff_timeout=1.0), srcs)
    net.silent.add(C)
    start(net, 7, [B, C])
    net.run()
    assert [(f.ok, f.reason) for f in net.finished] == [(False, "timeout")]
    assert len(srcs[A].items(NS)) == 200
    assert net.dropped == 0


def test_a_copy_keeps_the_senders_data() -> None:
    keys = keys_in(2, 100)
    srcs = sources(keys)
    net = Net(PlacementConfig(), srcs)
    start(net, 2, [B], copy=True)
    net.run()
    assert net.finished[0].ok and net.finished[0].copy
    assert len(srcs[A].items(NS)) == 100 and len(srcs[B].items(NS)) == 100


def test_an_empty_partition_is_handed_over_at_once() -> None:
    srcs = sources([])
    net = Net(PlacementConfig(), srcs)
    start(net, 9, [B])
    net.run()
    assert net.finished[0].ok
    assert [ev.partition for _, ev in net.filled] == [9]


def test_the_sender_keeps_to_its_rate() -> None:
    keys = keys_in(1, 2000)
    srcs = {
        A: MemoryEntrySource.build(join, {NS: [(k, b"x" * 500) for k in keys]}),
        B: MemoryEntrySource.build(join, {NS: []}),
    }
    rate = 64 * 1024
    net = Net(PlacementConfig(handoff_rate=rate, handoff_page_keys=200), srcs)
    start(net, 1, [B])
    net.run(until=120.0)
    assert net.finished[0].ok
    from_a = [(t, n) for t, n in net.sent_bytes]
    total = sum(n for _, n in from_a)
    elapsed = net.finished[0].duration
    # About 1 MB at 64 KiB/s: at least (total - one second's burst) / rate seconds.
    assert total > 1_000_000
    assert elapsed >= (total - rate - 300_000) / rate
