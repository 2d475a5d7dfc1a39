"""Bytes that one anti-entropy round exchanges to repair a few keys among many.

Two in-memory replicas (`MemoryEntrySource`) hold the same N keys with ~100-byte
states, except for k keys: either changed on one side (both replicas then hold
a state of the key, so it travels both ways and the CRDT join settles it) or
missing on one side (it travels one way). One round runs through the sans-IO
interface with every message crossing a msgpack encode/decode; sizes are msgpack
bytes before the encryption envelope. The last columns compare with a full
transfer of all N states as [key, state] pairs.

Run: .venv/bin/python benchmarks/antientropy_bytes.py [--keys 100000 1000000]
Prints a Markdown table. The issue's target: under 16 KiB of digest bytes to find
one differing key among 1,000,000.
"""

from __future__ import annotations

import argparse
import random

import msgpack

from swarmnode.replication.antientropy import (
    AntiEntropy,
    AntiEntropyConfig,
    ApplyStates,
    RoundFinished,
    encoded_size,
)
from swarmnode.replication.antientropy_memory import MemoryEntrySource
from swarmnode.sansio import Address

INITIATOR: Address = ("127.0.0.1", 7001)
RESPONDER: Address = ("127.0.0.2", 7001)
NAMESPACE = "tasks"
STATE_BYTES = 100


def join(ours: bytes, theirs: bytes) -> bytes:
    return max(ours, theirs)


def make_state(rng: random.Random) -> bytes:
    return rng.randbytes(STATE_BYTES)


def run_round(a: MemoryEntrySource, b: MemoryEntrySource) -> tuple[RoundFinished, int]:
    """One round from `a` to `b`; the result and the number of round trips it took."""
    config = AntiEntropyConfig.lan()
    nodes = {
        INITIATOR: (AntiEntropy("a", a, config, random.Random(1)), a),
        RESPONDER: (AntiEntropy("b", b, config, random.Random(2)), b),
    }
    _, out = nodes[INITIATOR][0].start_round(0.0, RESPONDER)
    wire = [(INITIATOR, RESPONDER, msg) for _, msg in out.send]
    finished: list[RoundFinished] = []
    legs = 0
    while wire:
        legs += 1
        later = []
        for src, dst, msg in wire:
            node, store = nodes[dst]
            decoded = msgpack.unpackb(msgpack.packb(msg, use_bin_type=True), raw=False)
            out = node.receive(float(legs), src, decoded)
            for event in out.events:
                if isinstance(event, ApplyStates):
                    store.apply(event.ns, event.states)
                else:
                    finished.append(event)
            later.extend((dst, to, reply) for to, reply in out.send)
        wire = later
    [result] = finished
    assert result.ok
    assert a.tree(NAMESPACE) == b.tree(NAMESPACE), "one round did not converge"
    return result, (legs + 1) // 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--differing", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    rng = random.Random(42)
    rows = []
    for count in args.keys:
        pairs = [(f"task:{i:08d}", make_state(rng)) for i in range(count)]
        full = sum(encoded_size([key, state]) for key, state in pairs)
        base = MemoryEntrySource.build(join, {NAMESPACE: pairs})
        for differing in args.differing:
            for kind in ("changed", "missing"):
                a, b = base.clone(), base.clone()
                for key, _ in rng.sample(pairs, differing):
                    if kind == "changed":
                        b.put(NAMESPACE, key, make_state(rng))
                    else:
                        b.remove(NAMESPACE, key)
                result, round_trips = run_round(a, b)
                rows.append((count, differing, kind, result, round_trips, full))
    tree = base.tree(NAMESPACE)
    assert tree is not None
    print(
        "| keys | differing | kind | digest bytes | state bytes | messages | round trips "
        "| full transfer bytes | repair / full |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for count, differing, kind, result, round_trips, full in rows:
        total = result.digest_bytes + result.state_bytes
        print(
            f"| {count:,} | {differing} | {kind} on one side | {result.digest_bytes:,} "
            f"| {result.state_bytes:,} | {result.messages} | {round_trips} | {full:,} "
            f"| {total / full:.2e} |"
        )
    print()
    print(
        f"Tree: fanout {tree.fanout}, depth {tree.depth}, {tree.nbytes:,} bytes per namespace "
        f"whatever the key count; states of {STATE_BYTES} bytes."
    )


if __name__ == "__main__":
    main()
