"""What a peer of a 3-node cluster spends per write it receives from a busy writer.

The pace section of `replication.py` found each peer spending ~0.37 cores on the
writer's stream, on the two cores the writer needs. That figure moves with the
host's load; this one does not. In one child process per code tree:

1. Record: three sans-IO `Node`s (real LMDB stores, fsync off, the `lan` profile,
   gossip sealed with a cluster key as on a real cluster) run on a virtual clock
   in 5 ms steps, exchanging every message as the transport would (packed into
   datagrams, sealed, opened, unpacked). Node 0 takes `--rate` puts a second;
   every datagram node 1 receives (SWIM included) is recorded with its step.
2. Replay: a fresh node 1 (same seed, same address, empty store) in a `NodeHost`
   on an asyncio loop, as the real runtime runs it: each step's datagrams are
   opened, unpacked and handed to the host as the endpoint's receive loop hands
   them over; the host recomputes the wake-up deadline after every step it
   carries out (the ticker's work), with the start-up state frozen as the node
   process does (`runtime/heap.py`) and the collector off (a pass falling inside
   one replay and not another decided comparisons); a stand-in for the writer
   thread commits whatever batches wait in one `Store.apply` at the loop's next
   turn; what the node sends is packed and sealed, then thrown away.

Figures per write the peer received: the copies of it that arrived, the deltas
it forwarded, user CPU µs of a replay of the whole recording (medians of
`--runs`, interleaving the trees) and, with `--callgrind`, instructions: two
replays that stop at the step of the `--writes`-th and of the twice-as-many-th
write of a recording three times as long, the difference divided by the writes
merged in between (start-up, recording and the copies in flight at the cut
cancel out). The socket, uvloop and the thread hand-off are left out. Example:

    .venv/bin/python benchmarks/peer_stream.py --tree main=/tmp/main --tree branch=. \\
        [--callgrind]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import asyncio, gc, random, sys, tempfile, time
from swarmnode.config import Config
from swarmnode.node import Node
from swarmnode.replication.merkle import leaf_bits
from swarmnode.runtime import heap
from swarmnode.runtime.host import NodeHost
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Put
from swarmnode.transport.envelope import envelope_overhead, open_envelope, seal_envelope
from swarmnode.transport.keyring import Keyring
from swarmnode.transport.packing import pack_messages, unpack_datagram

writes, replay_writes, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
directory = sys.argv[4]
STEP = 0.005
T0 = 1_800_000_000_000
cfg = Config.for_profile("lan")
keyring = Keyring([b"k" * 32])
budget = 1400 - envelope_overhead(keyring)
addrs = [("127.0.0.1", 7000 + i) for i in range(3)]


def make(i):
    store = Store(tempfile.mkdtemp(dir=directory), StoreConfig(map_size=1 << 30, sync=False),
                  node_id=f"{i}" * 16,
                  leaf_bits=leaf_bits(cfg.antientropy.tree_fanout, cfg.antientropy.tree_depth))
    return Node(cfg, store, address=addrs[i], rng=random.Random(i), now=0.0), store


def settle(node, store, now, out):
    # Carry out the node's Readys: commit its batches, pack and seal what it sends.
    while node.has_ready():
        rd = node.ready()
        node.advance(rd)
        by_peer = {}
        for to, msg in rd.messages:
            by_peer.setdefault(to, []).append(msg)
        for to, msgs in by_peer.items():
            for payload in pack_messages(msgs, budget).datagrams:
                out.append((to, seal_envelope(payload, keyring, sent_ms=T0 + int(now * 1000))))
        if rd.batch:
            node.persisted(rd.batch, store.apply(rd.writes, T0 + int(now * 1000)))


def deliver(node, store, now, sender, packet, out):
    for msg in unpack_datagram(open_envelope(packet, keyring).payload):
        node.receive(now, sender, msg)
    settle(node, store, now, out)


def record():
    # The recorded datagrams to node 1, (step, sender, packet), and the step at which
    # node 0 made its `replay_writes`-th write.
    nodes = [make(i) for i in range(3)]
    for i, (node, store) in enumerate(nodes):
        node.start(0.0, [addrs[0]] if i else [])
    stream, step, made, cut = [], 0, 0, None
    per_step = rate * STEP
    value = "x" * 100
    while True:
        now = step * STEP
        if now >= 3.0 and made < writes:
            due = min(writes, int((now - 3.0) / STEP * per_step + per_step))
            while made < due:
                nodes[0][0].propose(Put("default", f"k{made:06d}", f"{made:08d}{value}"), made + 1)
                made += 1
        if cut is None and made >= replay_writes:
            cut = step
        wire = []
        for i, (node, store) in enumerate(nodes):
            node.tick(now)
            out = []
            settle(node, store, now, out)
            wire.extend((addrs[i], to, p) for to, p in out)
        while wire:
            more = []
            for sender, to, packet in wire:
                j = addrs.index(to)
                if j == 1:
                    stream.append((step, sender, packet))
                out = []
                deliver(*nodes[j], now, sender, packet, out)
                more.extend((to, dest, p) for dest, p in out)
            wire = more
        step += 1
        if made >= writes and now > 3.0 + writes / rate + 2.0:
            break
    for node, store in nodes:
        store.close()
    return stream, cut


stream, cut = record()
# All of it; or up to the step of the `replay_writes`-th write, leaving out the copies
# then in flight (as many as at the same point of a longer replay).
last_step = stream[-1][0] if replay_writes >= writes else cut
node, store = make(1)


class Clock:
    now = 0.0

    def monotonic(self):
        return self.now

    def wall_ms(self):
        return T0 + int(self.now * 1000)


class Wire:
    # The endpoint's work per send: pack into datagrams and seal each.
    def send(self, addr, msgs):
        for payload in pack_messages(msgs, budget).datagrams:
            seal_envelope(payload, keyring, sent_ms=clock.wall_ms())


class Writer:
    # The writer thread's: whatever batches wait when it is free go in one transaction,
    # and their results come back to the loop.
    def __init__(self):
        self.waiting = []

    def submit(self, batch, ops, raft=None):
        if not self.waiting:
            loop.call_soon(self.commit)
        self.waiting.append((batch, ops))

    def commit(self):
        waiting, self.waiting = self.waiting, []
        results = store.apply([op for _, ops in waiting for op in ops], clock.wall_ms())
        committed, i = [], 0
        for batch, ops in waiting:
            committed.append((batch, results[i : i + len(ops)]))
            i += len(ops)
        loop.call_soon(host.on_committed, committed)

    def stats(self):
        return {}


async def replay():
    # As the real runtime runs a node: the datagrams of a step reach the host as the
    # receive loop hands them over (`take_message` where the tree has it), the host
    # recomputes the wake-up deadline after each carried-out step as the ticker does,
    # and the loop turns until the step's work is done.
    take = getattr(host, "take_message", host.on_message)
    host.stepped = node.next_deadline
    host.start([addrs[0]])
    k = 0
    for step in range(last_step + 1):
        clock.now = step * STEP
        host.tick()
        while k < len(stream) and stream[k][0] == step:
            _, sender, packet = stream[k]
            for msg in unpack_datagram(open_envelope(packet, keyring).payload):
                take(sender, msg)
            k += 1
        for _ in range(4):
            await asyncio.sleep(0)


clock = Clock()
loop = asyncio.new_event_loop()
host = NodeHost(node, Writer(), Wire(), clock, loop)
# The node process's collector policy (runtime/heap.py) freezes the start-up state and
# makes passes rare; here the collector is off during the replay as well: at that
# rate whether one pass falls inside a replay or not decided a comparison of trees.
heap.settle()
gc.disable()
started = time.process_time()
loop.run_until_complete(replay())
spent = time.process_time() - started
stats = node.dissemination.stats
print(spent, stats["deltas_received"], len(node.peer_addresses()), stats["deltas_sent"],
      store.ns_stats("default")["entries"])
store.close()
"""


def child(
    tree: Path, writes: int, replay: int, rate: int, directory: Path, callgrind: bool = False
) -> dict[str, float]:
    """One child process running `tree`: record `writes`, replay up to the `replay`-th."""
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    work = tempfile.mkdtemp(prefix="peer-stream-", dir=directory)
    try:
        cmd = [sys.executable, "-P", "-c", CHILD, str(writes), str(replay), str(rate), work]
        out_file = Path(work) / "callgrind.out"
        if callgrind:
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", *cmd]
        done = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        spent, received, peers, sent, held = done.stdout.split()
        got = {"cpu": float(spent), "received": int(received), "peers": int(peers),
               "sent": int(sent), "held": int(held), "instructions": 0}  # fmt: skip
        if callgrind:
            m = re.search(r"^summary:\s+(\d+)", out_file.read_text(), re.M)
            if m is None:
                raise SystemExit("no summary in the callgrind output")
            got["instructions"] = int(m.group(1))
        if got["peers"] != 2:
            raise SystemExit(f"{tree}: the replayed peer saw {got['peers']} live peers, not 2")
        return got
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=6000, help="writer's puts a second")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()
    trees = [(n, Path(p)) for n, p in (t.split("=", 1) for t in args.tree)]
    n = args.writes
    cpu: dict[str, list[float]] = {name: [] for name, _ in trees}
    per: dict[str, dict[str, float]] = {}
    load = []
    for r in range(args.runs):
        for name, path in trees if r % 2 == 0 else trees[::-1]:
            got = child(path, n, n, args.rate, args.dir)
            cpu[name].append(got["cpu"] / got["held"] * 1e6)
            per[name] = {k: got[k] / got["held"] for k in ("received", "sent")}
            load.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.runs}, load {load[-1]:.1f}", file=sys.stderr)
    instr: dict[str, float] = {}
    if args.callgrind:
        for name, path in trees:
            one = child(path, 3 * n, n, args.rate, args.dir, True)
            two = child(path, 3 * n, 2 * n, args.rate, args.dir, True)
            held = two["held"] - one["held"]
            instr[name] = (two["instructions"] - one["instructions"]) / held
    base = trees[0][0]
    print(
        f"A peer's replay of a writer's stream ({n:,} puts at {args.rate:,}/s, 3 nodes, lan); "
        f"CPU medians of {args.runs} interleaved runs, load average {min(load):.1f} to "
        f"{max(load):.1f} ({time.strftime('%Y-%m-%d %H:%M')}).\n"
    )
    cols = "| tree | copies received / write | deltas sent / write | CPU µs / write |"
    print(cols + (" instructions / write |" if instr else "") + f" ratio to {base} |")
    print("|---|---:|---:|---:|" + ("---:|" if instr else "") + "---:|")
    for name, _ in trees:
        med = statistics.median(cpu[name])
        row = f"| {name} | {per[name]['received']:.2f} | {per[name]['sent']:.2f} | {med:.1f} |"
        if instr:
            row += f" {instr[name]:,.0f} |"
            ratio = instr[name] / instr[base]
        else:
            ratio = med / statistics.median(cpu[base])
        print(row + f" {ratio:.2f}x |")
    print()
    for name, xs in cpu.items():
        print(f"<!-- {name} CPU µs per write: {', '.join(f'{x:.1f}' for x in xs)} -->")
    return 0


if __name__ == "__main__":
    sys.exit(main())
