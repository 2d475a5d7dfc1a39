"""CPU a durable write costs after the service chain, on the writer and on a peer.

Three figures, each for every code tree given with `--tree NAME=PATH` (PYTHONPATH,
`python -P`), in `--runs` rounds that interleave the trees (medians):

- `node put`: a `swarmnode run` process (fsync on) takes `--puts` puts of
  `local_ops.VALUE` from `--clients` clients over the Unix socket; the node's CPU
  time (user + system, every thread) per put. Everything counts, the service
  chain and the socket included.
- `write path`: in one process, what follows the service chain for a put:
  `Node.propose`, the Ready, `Store.apply` (fsync off) and `Node.persisted` with
  its Merkle update and gossip enqueue; batches of 50 puts of 100 bytes over
  5,000 keys, user CPU per put.
- `peer merge`: in one process, a peer receiving the same kind of writes as
  gossip: `Node.receive` of `d.deltas` messages of 10 deltas each (new keys),
  the merges through `Store.apply` (fsync off), `Node.persisted`, and the
  forwarding of each new delta to the third node (`Dissemination.tick`, a
  message every 15 ms); user CPU per delta.

- `gossip`: in one process, a writer's delta gossip at 3 nodes: 50 deltas queued
  per 15 ms tick, `Dissemination.tick` with two peers (direct rounds, every
  delta sent twice to each); user CPU per delta queued.

The in-process figures leave the socket, the transport and the thread hand-offs
out; they move less with the host's load than the node figure, which is the
one a client sees. Example:

    .venv/bin/python benchmarks/write_path.py --tree main=/path/to/main --tree branch=.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from local_ops import NodeUnderTest, cpu_seconds, many_clients

IN_PROCESS = r"""
import random, sys, tempfile, time
from swarmnode.config import Config
from swarmnode.crdt.codec import encode_entry
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts
from swarmnode.node import Node
from swarmnode.replication.merkle import leaf_bits
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Put

what, batches, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = Config()
store = Store(tempfile.mkdtemp(dir=directory), StoreConfig(map_size=1 << 30, sync=False),
              node_id="n" * 16,
              leaf_bits=leaf_bits(cfg.antientropy.tree_fanout, cfg.antientropy.tree_depth))
node = Node(cfg, store, address=("127.0.0.1", 9), rng=random.Random(1), now=0.0)
value, t0 = "x" * 100, time.time_ns() // 1_000_000
per = 10 if what == "merge" else 50
# 3,000 writes first: the Merkle tree has turned from sparse to arrays (importing numpy).
warm = 3000 // per
sender, third = ("127.0.0.2", 9), ("127.0.0.3", 9)
if what == "gossip":
    from swarmnode.replication.dissemination import Dissemination
    gossip = Dissemination(cfg.dissemination, random.Random(1))
    peers = [("127.0.0.2", 9), ("127.0.0.3", 9)]

def settle(b):
    while node.has_ready():
        rd = node.ready()
        node.advance(rd)
        if rd.batch:
            node.persisted(rd.batch, store.apply(rd.writes, t0 + b))

def step(b):
    if what == "gossip":
        for i in range(per):
            n = b * per + i
            delta = Entry().put_lww(make_ts(t0, n), "w" * 16, value).by("agent-7")
            gossip.enqueue("default", f"k{n:07d}", encode_entry(delta))
        gossip.tick(b * 0.015, peers)
        return
    if what == "write":
        for i in range(per):
            key = f"k{(b * per + i) % 5000:06d}"
            node.propose(Put("default", key, value, agent="agent-7"), b * per + i + 1)
    else:
        ds = []
        for i in range(per):
            n = b * per + i
            delta = Entry().put_lww(make_ts(t0, n), "p" * 16, value).by("agent-7")
            ds.append(["default", f"k{n:07d}", encode_entry(delta)])
        node.receive(b * 0.015, sender, {"t": "d.deltas", "ds": ds})
    settle(b)
    if what == "merge":
        node.dissemination.tick(b * 0.015, [sender, third])

for b in range(warm):
    step(b)
started = time.process_time()
for b in range(warm, warm + batches):
    step(b)
print((time.process_time() - started) / (batches * per))
store.close()
"""


def in_process(tree: Path, what: str, batches: int, directory: Path) -> float:
    """CPU µs per put (`write`), per received delta (`merge`) or per delta gossiped
    (`gossip`) of one run."""
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, "-P", "-c", IN_PROCESS, what, str(batches), str(directory)],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    return float(done.stdout.strip()) * 1e6


def node_put(tree: Path, puts: int, clients: int, directory: Path, tag: str) -> float:
    """Node CPU µs per durable put through the socket, one fresh node."""
    node = NodeUnderTest(directory, code=tree)
    try:
        many_clients(node, "put", f"warm/{tag}", clients, 10)
        cpu = cpu_seconds(node.proc.pid)
        each = max(1, puts // clients)
        many_clients(node, "put", tag, clients, each)
        return (cpu_seconds(node.proc.pid) - cpu) / (each * clients) * 1e6
    finally:
        node.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--puts", type=int, default=3000, help="per node run")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batches", type=int, default=300, help="per in-process run")
    args = parser.parse_args()
    trees = [(name, Path(path)) for name, _, path in (t.partition("=") for t in args.tree)]
    figures = ("node put", "write path", "peer merge", "gossip")
    got: dict[tuple[str, str], list[float]] = {(n, f): [] for n, _ in trees for f in figures}
    load = []
    for r in range(args.runs):
        order = trees if r % 2 == 0 else trees[::-1]
        for name, path in order:
            got[name, "node put"].append(node_put(path, args.puts, args.clients, args.dir, f"r{r}"))
            got[name, "write path"].append(in_process(path, "write", args.batches, args.dir))
            got[name, "peer merge"].append(in_process(path, "merge", args.batches, args.dir))
            got[name, "gossip"].append(in_process(path, "gossip", args.batches, args.dir))
            load.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.runs} done, load {load[-1]:.1f}", file=sys.stderr)
    base = trees[0][0]
    print(
        f"CPU µs per write, medians of {args.runs} interleaved rounds; node put with "
        f"{args.clients} clients, fsync on; load average {min(load):.1f} to {max(load):.1f} "
        f"({time.strftime('%Y-%m-%d %H:%M')}).\n"
    )
    print("| figure | " + " | ".join(n for n, _ in trees) + f" | ratio to {base} |")
    print("|---|" + "---:|" * len(trees) + "---|")
    for f in figures:
        meds = [statistics.median(got[n, f]) for n, _ in trees]
        ratios = ", ".join(f"{m / meds[0]:.2f}x" for m in meds[1:])
        print(f"| {f} | " + " | ".join(f"{m:.1f}" for m in meds) + f" | {ratios} |")
    print()
    for (n, f), xs in got.items():
        print(f"<!-- {n} {f}: {', '.join(f'{x:.1f}' for x in xs)} -->")
    return 0


if __name__ == "__main__":
    sys.exit(main())
