"""The storage engine's cost per put at a fixed batch size: CPU time and instructions.

`instructions_per_op.py` measures the whole node, and its put figure moves by a few
per cent from run to run because how many writes share a commit depends on how the
host schedules the clients. This measures only `Store.apply` (the writer thread's
work) with batches of exactly `--batch` puts overwriting 1,000 keys, fsync off:

- user CPU time per put, in `--runs` rounds that interleave the trees (medians);
- instructions per put under callgrind: a run with `--batches` measured batches
  minus a run with none, divided by the puts.

`--op merge` measures a replica instead: the same puts, made on a peer, arrive as
gossip deltas (`Merge`, what a peer's writer thread applies per received write).

Both are given because they can disagree: instructions do not count what memory
traffic costs (cache misses), CPU time does, at the price of the host's noise.
Values as in `instructions_per_op.py`. Each tree given with `--tree NAME=PATH`
runs from that tree (PYTHONPATH; `python -P`, so the working directory does not
come first). Example:

    .venv/bin/python benchmarks/engine_apply.py --tree before=/path/to/old --tree after=.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VALUE = {"agent": "agent-7", "state": "working", "payload": "x" * 64}
KEYS = 1000
WARM_BATCHES = 20

APPLY = f"""
import sys, tempfile
from swarmnode.crdt.entry import Entry
from swarmnode.crdt.hlc import make_ts
from swarmnode.storage.config import StoreConfig
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.ops import Merge, Put
batches, size, value, op = int(sys.argv[1]), int(sys.argv[2]), {VALUE!r}, sys.argv[4]
total = int(sys.argv[5])
store = Store(tempfile.mkdtemp(dir=sys.argv[3]), StoreConfig(map_size=1 << 30, sync=False),
              node_id="b" * 16)
t0 = 1_800_000_000_000
def one(b, i):
    key = f"key:{{(b * size + i) % {KEYS}}}"
    if op == "put":
        return Put("default", key, value)
    delta = Entry().put_lww(make_ts(t0 + b, i), "p" * 16, value).by("agent-7")
    return Merge("default", key, delta, full=False)
# Every run makes the operations of `total` batches, so a run's instructions differ
# from the empty run's by the applying alone.
todo = [[one(b, i) for i in range(size)] for b in range({WARM_BATCHES} + total)]
for b, ops in enumerate(todo[: {WARM_BATCHES} + batches]):
    if b == {WARM_BATCHES}:
        import resource
        started = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    assert all(r.error is None for r in store.apply(ops, t0 + b))
if batches:
    used = resource.getrusage(resource.RUSAGE_SELF).ru_utime - started
    print(used / (batches * size))
store.close()
"""


def instructions(tree: Path, batches: int, total: int, size: int, op: str, directory: Path) -> int:
    """Total instructions of one run of the script (Python start-up and warm-up included)."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        out = Path(scratch) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "PYTHONHASHSEED": "0"}
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             "-P", "-c", APPLY, str(batches), str(size), scratch, op, str(total)],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        found = re.search(r"^totals: (\d+)", out.read_text(errors="replace"), re.MULTILINE)
        if found is None:
            raise SystemExit(f"no totals in the callgrind output of {tree}")
        return int(found.group(1))


def cpu_per_put(tree: Path, batches: int, size: int, op: str, directory: Path) -> float:
    """User CPU seconds per put of one run, without valgrind."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "PYTHONHASHSEED": "0"}
        done = subprocess.run(
            [sys.executable, "-P", "-c", APPLY, str(batches), str(size), scratch, op,
             str(batches)],
            check=True, env=env, capture_output=True, text=True,
        )  # fmt: skip
        return float(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--batch", type=int, default=50, help="puts per transaction")
    parser.add_argument("--batches", type=int, default=100, help="measured transactions")
    parser.add_argument("--runs", type=int, default=5, help="CPU-time rounds")
    parser.add_argument(
        "--op",
        choices=["put", "merge"],
        default="put",
        help="client puts, or the same writes arriving from a peer",
    )
    args = parser.parse_args()
    trees = [(name, Path(path)) for name, _, path in (t.partition("=") for t in args.tree)]
    cpu: dict[str, list[float]] = {name: [] for name, _ in trees}
    for _ in range(args.runs):
        for name, path in trees:
            cpu[name].append(
                cpu_per_put(path, 4 * args.batches, args.batch, args.op, args.dir) * 1e6
            )
    rows = []
    for name, path in trees:
        empty = instructions(path, 0, args.batches, args.batch, args.op, args.dir)
        full = instructions(path, args.batches, args.batches, args.batch, args.op, args.dir)
        per_put = (full - empty) / (args.batches * args.batch)
        rows.append((name, statistics.median(cpu[name]), per_put))
        print(f"{name}: {per_put:,.0f} instructions per put", file=sys.stderr, flush=True)
    print(
        f"Store.apply per {args.op}, batches of {args.batch} (fsync off); load average "
        f"{os.getloadavg()[0]:.1f} after the run.\n"
    )
    print("| code | user CPU µs per put (median) | rounds | instructions per put |")
    print("|---|---:|---|---:|")
    for name, median_us, per_put in rows:
        rounds = ", ".join(f"{x:.1f}" for x in cpu[name])
        print(f"| {name} | {median_us:.1f} | {rounds} | {per_put:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
