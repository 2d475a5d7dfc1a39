"""Anti-entropy rounds between two in-memory replicas, driven through the sans-IO interface.

Messages cross a msgpack encode/decode, as on the wire; `ApplyStates` events
are joined into the receiving replica with a max() join (a toy semilattice that
settles a key changed on both sides the same way on both).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
import pytest

from swarmnode.replication.antientropy import (
    AntiEntropy,
    AntiEntropyConfig,
    ApplyStates,
    RoundFinished,
    encoded_size,
)
from swarmnode.replication.antientropy_memory import MemoryEntrySource
from swarmnode.sansio import Address, Message

A: Address = ("127.0.0.1", 7001)
B: Address = ("127.0.0.2", 7001)


def join(ours: bytes, theirs: bytes) -> bytes:
    return max(ours, theirs)


def replica(namespaces: dict[str, int], prefix: str = "v") -> MemoryEntrySource:
    data = {
        ns: [(f"key-{i}", f"{prefix}:{ns}:{i}:".encode().ljust(100, b".")) for i in range(n)]
        for ns, n in namespaces.items()
    }
    return MemoryEntrySource.build(join, data)


@dataclass
class Pair:
    """Two nodes and the wire between them; `a` starts the rounds."""

    store_a: MemoryEntrySource
    store_b: MemoryEntrySource
    config: AntiEntropyConfig = field(default_factory=AntiEntropyConfig.local)
    config_b: AntiEntropyConfig | None = None
    now: float = 0.0
    finished: list[RoundFinished] = field(default_factory=list)
    applied: dict[Address, list[ApplyStates]] = field(default_factory=lambda: {A: [], B: []})
    sent: list[Message] = field(default_factory=list)
    waves: int = 0

    def __post_init__(self) -> None:
        self.a = AntiEntropy("a", self.store_a, self.config, random.Random(1))
        self.b = AntiEntropy("b", self.store_b, self.config_b or self.config, random.Random(2))
        self.nodes = {A: (self.a, self.store_a), B: (self.b, self.store_b)}

    def round(
        self,
        between_waves: Callable[[int], None] = lambda wave: None,
        drop: Callable[[Message], bool] = lambda msg: False,
    ) -> RoundFinished:
        _, out = self.a.start_round(self.now, B)
        self.collect(A, out.events)
        wire = [(A, B, msg) for _, msg in out.send]
        while wire:
            self.waves += 1
            self.now += 0.01
            between_waves(self.waves)
            later = []
            for src, dst, msg in wire:
                self.sent.append(msg)
                if drop(msg):
                    continue
                node, _ = self.nodes[dst]
                decoded = msgpack.unpackb(msgpack.packb(msg, use_bin_type=True), raw=False)
                out = node.receive(self.now, src, decoded)
                self.collect(dst, out.events)
                later.extend((dst, to, reply) for to, reply in out.send)
            wire = later
        self.now += self.config.round_timeout
        self.collect(A, self.a.tick(self.now).events)
        return self.finished[-1]

    def collect(self, at: Address, events: list[object]) -> None:
        for event in events:
            if isinstance(event, ApplyStates):
                self.applied[at].append(event)
                self.nodes[at][1].apply(event.ns, event.states)
            else:
                assert isinstance(event, RoundFinished)
                self.finished.append(event)


def assert_converged(a: MemoryEntrySource, b: MemoryEntrySource) -> None:
    assert a.namespaces() == b.namespaces()
    for ns in a.namespaces():
        assert a.items(ns) == b.items(ns)
        assert a.tree(ns) == b.tree(ns)


def test_one_round_repairs_every_kind_of_difference_among_many_keys() -> None:
    store_a = replica({"tasks": 20_000, "agents": 3_000})
    store_b = store_a.clone()
    store_b.put("tasks", "key-10", b"w:changed on b")
    store_a.put("tasks", "key-20", b"w:changed on a")
    store_a.put("tasks", "only-on-a", b"w:new on a")
    store_b.put("tasks", "only-on-b", b"w:new on b")
    store_a.put("tasks", "key-30", b"w:tombstone written on a")
    store_a.put("agents", "key-7", b"w:a's side")
    store_b.put("agents", "key-7", b"w:b's side")
    pair = Pair(store_a, store_b)

    result = pair.round()

    assert result.ok and result.reason == ""
    assert_converged(store_a, store_b)
    assert store_a.get("agents", "key-7") == b"w:b's side"
    assert store_a.get("tasks", "key-30") == b"w:tombstone written on a"
    # Both ways for every key held on both sides with different states (key-10, key-20,
    # key-30, agents/key-7); one way for only-on-a and only-on-b.
    assert (result.keys_sent, result.keys_received) == (5, 5)
    assert result.messages == len(pair.sent)
    assert result.digest_bytes + result.state_bytes == sum(encoded_size(m) for m in pair.sent)


def test_a_key_changed_on_both_sides_travels_both_ways() -> None:
    store_a = replica({"swarm": 1000})
    store_b = store_a.clone()
    store_a.put("swarm", "key-1", b"from a")
    store_b.put("swarm", "key-1", b"from b")
    pair = Pair(store_a, store_b)

    result = pair.round()

    assert (result.keys_sent, result.keys_received) == (1, 1)
    assert [e.states for e in pair.applied[A]] == [[("key-1", b"from b")]]
    assert [e.states for e in pair.applied[B]] == [[("key-1", b"from a")]]
    assert store_a.get("swarm", "key-1") == store_b.get("swarm", "key-1") == b"from b"


def test_namespaces_present_on_one_side_only_are_copied_both_ways() -> None:
    store_a = replica({"shared": 500, "only-a": 700})
    store_b = replica({"shared": 500, "only-b": 900}, prefix="v")
    pair = Pair(store_a, store_b)

    result = pair.round()

    assert result.ok
    assert_converged(store_a, store_b)
    assert (result.keys_sent, result.keys_received) == (700, 900)


def test_converged_replicas_exchange_only_their_roots() -> None:
    store_a = replica({"tasks": 5000, "agents": 10})
    pair = Pair(store_a, store_a.clone())

    result = pair.round()

    assert result.ok
    assert (result.messages, result.keys_sent, result.keys_received, result.state_bytes) == (
        2,
        0,
        0,
        0,
    )
    assert [m["t"] for m in pair.sent] == ["ae.roots", "ae.answer"]


def test_digest_bytes_grow_with_the_log_of_the_key_count() -> None:
    costs = []
    for keys in (1_000, 100_000):
        store_a = replica({"ns": keys})
        store_b = store_a.clone()
        store_b.put("ns", "key-17", b"changed")
        result = Pair(store_a, store_b).round()
        assert result.ok and result.keys_received == 1
        costs.append(result.digest_bytes)
    assert costs[1] < 2 * costs[0]
    assert costs[1] < 4096


def test_every_message_stays_under_the_size_bound_and_large_repairs_still_finish() -> None:
    config = AntiEntropyConfig(max_message_bytes=1024, round_timeout=1.0)
    store_a = replica({"big": 4000, "only-a": 1500})
    store_b = replica({"big": 4000, "only-b": 1200}, prefix="w")
    for i in range(0, 4000, 3):
        store_b.put("big", f"key-{i}", b"v" * 120)
    pair = Pair(store_a, store_b, config=config)

    result = pair.round()

    assert result.ok
    assert_converged(store_a, store_b)
    assert max(encoded_size(m) for m in pair.sent) <= 1024
    kinds = {m["t"] for m in pair.sent}
    assert kinds == {"ae.roots", "ae.query", "ae.answer", "ae.xfer", "ae.states"}


def test_a_state_larger_than_the_size_bound_travels_alone() -> None:
    config = AntiEntropyConfig(max_message_bytes=1024)
    store_a = replica({"ns": 100})
    store_b = store_a.clone()
    store_a.put("ns", "key-1", b"a" * 5000)
    store_b.put("ns", "key-2", b"b" * 5000)
    pair = Pair(store_a, store_b, config=config)

    assert pair.round().ok
    assert_converged(store_a, store_b)
    oversized = [m for m in pair.sent if encoded_size(m) > 1024]
    assert len(oversized) == 2
    assert all(len(m["s"]) == 1 for m in oversized)


def test_writes_during_a_round_leave_a_repair_that_later_rounds_finish() -> None:
    store_a = replica({"ns": 3000})
    store_b = store_a.clone()
    for i in range(0, 3000, 50):
        store_b.put("ns", f"key-{i}", b"z" + bytes([i % 256]))
    rng = random.Random(5)

    def write_on_both(wave: int) -> None:
        for store in (store_a, store_b):
            for _ in range(5):
                store.put("ns", f"key-{rng.randrange(4000)}", b"w%d" % rng.randrange(10**6))
            store.remove("ns", f"key-{rng.randrange(4000)}")

    pair = Pair(store_a, store_b)
    pair.round(between_waves=write_on_both)
    rounds = 1
    while store_a.tree("ns") != store_b.tree("ns"):
        assert rounds < 4
        assert pair.round().ok
        rounds += 1
    assert_converged(store_a, store_b)


def test_a_round_whose_peer_never_answers_times_out() -> None:
    config = AntiEntropyConfig.local()
    node = AntiEntropy("a", replica({"ns": 10}), config, random.Random(3))
    round_id, out = node.start_round(100.0, B)
    [(to, roots)] = out.send
    assert to == B and roots["t"] == "ae.roots"

    assert node.tick(100.0 + config.round_timeout / 2).events == []
    [finished] = node.tick(100.0 + config.round_timeout).events

    assert finished == RoundFinished(
        round_id, B, False, 0, 0, encoded_size(roots), 0, config.round_timeout, 1, "timeout"
    )
    assert node.active_rounds == 0
    late = {"t": "ae.answer", "r": round_id, "q": 0, "k": 1, "x": [], "res": []}
    assert node.receive(200.0, B, late).events == []


def test_a_round_that_loses_a_message_midway_times_out() -> None:
    store_a = replica({"ns": 2000})
    store_b = store_a.clone()
    store_b.put("ns", "key-3", b"changed")
    pair = Pair(store_a, store_b)

    result = pair.round(drop=lambda msg: msg["t"] == "ae.states")

    assert (result.ok, result.reason) == (False, "timeout")
    assert store_a.get("ns", "key-3") != b"changed"
    assert pair.round().ok
    assert_converged(store_a, store_b)


def test_rounds_beyond_the_concurrency_bound_finish_at_once_as_busy() -> None:
    config = AntiEntropyConfig(max_concurrent_rounds=2)
    node = AntiEntropy("a", replica({"ns": 10}), config, random.Random(3))
    started = [node.start_round(0.0, ("127.0.0.9", port)) for port in (1, 2, 3)]

    assert [len(out.send) for _, out in started] == [1, 1, 0]
    [busy] = started[2][1].events
    assert isinstance(busy, RoundFinished)
    assert (busy.round_id, busy.ok, busy.reason) == (started[2][0], False, "busy")
    assert len({round_id for round_id, _ in started}) == 3


def test_a_peer_with_another_tree_shape_refuses_the_round() -> None:
    store_a = replica({"ns": 10})
    other = AntiEntropyConfig(tree_fanout=16, tree_depth=3)
    pair = Pair(store_a, store_a.clone(), config_b=other)

    result = pair.round()

    assert not result.ok
    assert result.reason.startswith("refused: tree shape")


def test_answers_from_an_address_other_than_the_peer_are_ignored() -> None:
    store_a = replica({"ns": 10})
    store_b = replica({"ns": 10}, prefix="w")
    a = AntiEntropy("a", store_a, AntiEntropyConfig.local(), random.Random(1))
    b = AntiEntropy("b", store_b, AntiEntropyConfig.local(), random.Random(2))
    _, out = a.start_round(0.0, B)
    [(_, answer)] = b.receive(0.0, A, out.send[0][1]).send

    assert a.receive(0.1, ("127.0.0.66", 7001), answer).send == []
    assert a.receive(0.1, B, answer).send != []


@pytest.mark.parametrize("threshold", [1, 32, 10_000])
def test_any_listing_threshold_repairs_the_same_keys(threshold: int) -> None:
    store_a = replica({"ns": 5000})
    store_b = store_a.clone()
    for i in (1, 99, 2500, 4999):
        store_b.put("ns", f"key-{i}", b"changed")
    pair = Pair(store_a, store_b, config=AntiEntropyConfig(list_threshold=threshold))

    result = pair.round()

    assert result.ok and result.keys_received == 4
    assert_converged(store_a, store_b)


def test_namespaces_beyond_one_roots_message_are_covered_by_later_rounds() -> None:
    names = {f"a-namespace-with-a-rather-long-name-{i:03d}": 3 for i in range(30)}
    store_a = replica(names)
    store_b = replica(names, prefix="w")
    pair = Pair(store_a, store_b, config=AntiEntropyConfig(max_message_bytes=1024))

    rounds = 0
    while any(store_a.tree(ns) != store_b.tree(ns) for ns in names):
        assert rounds < 20
        assert pair.round().ok
        rounds += 1

    assert rounds > 1
    roots = [m for m in pair.sent if m["t"] == "ae.roots"]
    assert all(not m["all"] and encoded_size(m) <= 1024 for m in roots)
    assert_converged(store_a, store_b)
