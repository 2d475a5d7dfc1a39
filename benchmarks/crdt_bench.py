"""Join throughput and encoded size of each CRDT type at realistic sizes.

Each type is measured on two states built with its own mutators, the way two
replicas would hold them, and on one delta:

- OR-set: 1,000 members added by 5 nodes; the replicas differ by a few adds
  and removes; the delta adds one member.
- PN-counter: 10 nodes that incremented and decremented; the delta is one increment.
- MV register: 3 concurrent siblings from 3 nodes; the delta is a write that
  saw all three and replaces them.
- LWW register: a 200-byte value; a delta is a whole register.

"Full" joins one replica's state into the other's. Anti-entropy decodes what
it receives, so the incoming full state is a decoded copy (distinct objects,
as in production), not the same Python objects. "Delta" joins a mutator's delta
into a full state. Bytes are `encode_entry` output for the state alone in an
Entry. Every figure is the median of `--runs` timed runs, each long enough
(about --seconds) to dwarf timer noise.

Run: .venv/bin/python benchmarks/crdt_bench.py [--runs 7] [--seconds 0.2]
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from swarmnode.crdt import (
    Entry,
    LWWRegister,
    MVRegister,
    ORSet,
    PNCounter,
    Version,
    decode_entry,
    encode_entry,
    make_ts,
)

WALL_MS = 1_780_000_000_000
TTL_MS = 4 * 3600 * 1000


def node(i: int) -> str:
    return f"node-{i}"


def wrap(state: Any) -> Entry:
    kind = {LWWRegister: "reg", MVRegister: "mv", PNCounter: "counter", ORSet: "orset"}
    # Stamped after every write the cases make: an entry's ts bounds its writes.
    return Entry(make_ts(WALL_MS + 10), **{kind[type(state)]: state})


def unwrap(entry: Entry) -> Any:
    return entry.reg or entry.mv or entry.counter or entry.orset


def decoded_copy(state: Any) -> Any:
    return unwrap(decode_entry(encode_entry(wrap(state))))


@dataclass
class Case:
    name: str
    shape: str
    ours: Any
    theirs: Any
    delta: Any


def orset_case() -> Case:
    s = ORSet()
    for n in range(5):
        for i in range(200):
            s = s.join(s.add(node(n), [f"member-{n}-{i:03d}"], WALL_MS + TTL_MS))
    ours, theirs = s, s
    for i in range(10):
        ours = ours.join(ours.add(node(0), [f"ours-{i}"], WALL_MS + TTL_MS))
        theirs = theirs.join(theirs.add(node(1), [f"theirs-{i}"], WALL_MS + TTL_MS))
        theirs = theirs.join(theirs.remove([f"member-2-{i:03d}"]))
    delta = ours.add(node(3), ["one-more"], WALL_MS + TTL_MS)
    return Case("OR-set", "1,000 members, 5 nodes", ours, decoded_copy(theirs), delta)


def counter_case() -> Case:
    c = PNCounter()
    for n in range(10):
        c = c.join(c.increment(node(n), 17 * (n + 1), None))
        c = c.join(c.increment(node(n), -3, None))
    ours = c.join(c.increment(node(0), 5, None))
    theirs = c.join(c.increment(node(9), 5, None)).join(c.reset())
    delta = ours.increment(node(4), 1, None)
    return Case("PN-counter", "10 nodes", ours, decoded_copy(theirs), delta)


def mv_case() -> Case:
    ours = MVRegister()
    for n in range(3):
        version = Version({"text": f"sibling {n}", "n": n}, make_ts(WALL_MS, n))
        ours = ours.join(MVRegister().write(node(n), version))
    delta = ours.write(node(0), Version({"text": "merged"}, make_ts(WALL_MS + 1)))
    return Case("MV register", "3 siblings", ours, decoded_copy(ours), delta)


def lww_case() -> Case:
    value = "v" * 200
    ours = LWWRegister(make_ts(WALL_MS), node(0), value, {"source": "agent-1"})
    theirs = LWWRegister(make_ts(WALL_MS, 1), node(1), value, {"source": "agent-2"})
    delta = LWWRegister(make_ts(WALL_MS + 5), node(2), value)
    return Case("LWW register", "200-byte value", ours, decoded_copy(theirs), delta)


def per_second(fn: Callable[[], Any], runs: int, seconds: float) -> float:
    """Median calls per second over `runs` runs of at least `seconds` each."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start >= seconds / 4:
            break
        n *= 2
    n = max(1, int(n * seconds / max(time.perf_counter() - start, 1e-9)))
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(case: Case, runs: int, seconds: float) -> dict[str, Any]:
    ours, theirs, delta = case.ours, case.theirs, case.delta
    full = encode_entry(wrap(ours))
    return {
        "full": per_second(lambda: ours.join(theirs), runs, seconds),
        "delta": per_second(lambda: ours.join(delta), runs, seconds),
        "full_bytes": len(full),
        "delta_bytes": len(encode_entry(wrap(delta))),
        "encode_us": 1e6 / per_second(lambda: encode_entry(wrap(ours)), runs, seconds),
        "decode_us": 1e6 / per_second(lambda: decode_entry(full), runs, seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure (median)")
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one timed run")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"msgpack {'.'.join(map(str, msgpack.version))}, {platform.machine()}, "
        f"median of {args.runs} runs\n"
    )
    print(
        "| type | size | full joins/s | delta joins/s | full state bytes | delta bytes "
        "| encode µs | decode µs |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for case in (orset_case(), counter_case(), mv_case(), lww_case()):
        m = measure(case, args.runs, args.seconds)
        print(
            f"| {case.name} | {case.shape} | {m['full']:,.0f} | {m['delta']:,.0f} "
            f"| {m['full_bytes']:,} | {m['delta_bytes']:,} "
            f"| {m['encode_us']:,.1f} | {m['decode_us']:,.1f} |"
        )


if __name__ == "__main__":
    main()
