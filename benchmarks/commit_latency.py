"""Where a lone client's durable write spends its time: the node's commit against Redis's.

Issue 16 asks that a SET from one client (redis-benchmark -c 1) answer within 2x
Redis's median with `appendfsync always`. This splits the node's latency into
what the disk costs and what everything else costs, in one run:

1. redis-benchmark `SET -c 1` against Redis (`appendfsync always`), a node with
   fsync on (as in production) and a node with `[store] sync = false`, on the
   same disk, interleaved run by run, medians of `--runs`: the no-sync node's
   latency is the request path without the disk.
2. `strace` on the fsync-on node while it answers `--traced` single-client SETs:
   how many `fdatasync` calls and page writes each commit makes, and how long
   they take (LMDB syncs the data pages with `fdatasync`, then writes the meta
   page through a descriptor opened `O_DSYNC`, which syncs it too).
3. Raw LMDB in this process: one 100-byte put into each of 1, 2, 4 and 7
   databases of 10,000 keys per transaction, commit latency with sync on,
   median of `--commits`: what each further database (a leaf and its
   branches) adds to a commit on this disk.

Run: .venv/bin/python benchmarks/commit_latency.py [--dir /var/tmp] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lmdb
from redis_compare import KEYSPACE, VALUE_BYTES, Server, filesystem_of, start_redis, wait_for

RESULTS = Path(__file__).resolve().parent / "results" / "commit_latency.md"
STRACE_LINE = re.compile(r"^\d+\s+(\w+)\((\d+)[,)].*<([\d.]+)>$")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_node(base: Path, name: str, sync: bool) -> Server:
    """A node with the RESP socket, fsync on or off, in its own directory under `base`."""
    home = base / name
    (home / "run").mkdir(parents=True)
    config = home / "node.toml"
    config.write_text(f"[store]\nsync = {'true' if sync else 'false'}\n")
    socket = home / "run" / "resp.sock"
    cmd = [
        str(Path(sys.executable).parent / "swarmnode"), "run", "--data-dir", str(home / "node"),
        "--socket", str(home / "run" / "api.sock"), "--resp-socket", str(socket),
        "--bind", "127.0.0.1:0", "--config", str(config),
    ]  # fmt: skip
    with open(home / "node.log", "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    wait_for(lambda: socket.exists() or proc.poll() is not None, f"{name} start")
    if proc.poll() is not None:
        raise SystemExit(f"{name} exited: {(home / 'node.log').read_text()[-2000:]}")
    return Server(name, proc, socket)


def set_one_client(server: Server, requests: int) -> float:
    """Median latency (ms) of `requests` SETs from one redis-benchmark client."""
    cmd = [
        "redis-benchmark", "-s", str(server.socket), "-t", "set", "-n", str(requests),
        "-c", "1", "-d", str(VALUE_BYTES), "-r", str(KEYSPACE), "--csv",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True).stdout
    header, row = out.strip().splitlines()[-2:]
    names, values = header.replace('"', "").split(","), row.replace('"', "").split(",")
    return float(dict(zip(names, values, strict=True))["p50_latency_ms"])


def traced_commits(server: Server, requests: int, base: Path) -> dict[str, float]:
    """Per commit, from strace: fdatasync calls, data-page writes, and the seconds of the
    fdatasync and of the O_DSYNC meta-page write."""
    trace = base / "strace.txt"
    tracer = subprocess.Popen(
        ["strace", "-f", "-T", "-e", "trace=fdatasync,fsync,pwrite64", "-o", str(trace),
         "-p", str(server.proc.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert tracer.stderr is not None
    tracer.stderr.readline()  # "Process N attached": tracing has begun
    set_one_client(server, requests)
    time.sleep(0.2)  # the last commit's calls reach the trace file
    tracer.terminate()
    tracer.wait(30)
    calls: list[tuple[str, int, float]] = []
    for line in trace.read_text().splitlines():
        m = STRACE_LINE.match(line)
        if m:
            calls.append((m.group(1), int(m.group(2)), float(m.group(3))))
    syncs = [(fd, s) for call, fd, s in calls if call in ("fdatasync", "fsync")]
    if not syncs:
        raise SystemExit("strace saw no fdatasync: is fsync on, and may strace attach here?")
    data_fd = statistics.mode(fd for fd, _ in syncs)
    data_writes = [s for call, fd, s in calls if call == "pwrite64" and fd == data_fd]
    meta_writes = [s for call, fd, s in calls if call == "pwrite64" and fd != data_fd]
    if not meta_writes:
        raise SystemExit("strace saw no meta-page write: has LMDB's layout of descriptors changed?")
    commits = len(meta_writes)  # each commit ends with its meta page
    return {
        "commits": commits,
        "syncs_per_commit": len(syncs) / commits,
        "data_pages_per_commit": len(data_writes) / commits,
        "fdatasync_ms": statistics.median(s for _, s in syncs) * 1e3,
        "meta_write_ms": statistics.median(meta_writes) * 1e3,
    }


def raw_lmdb(base: Path, commits: int) -> dict[int, float]:
    """Median commit latency (ms), sync on, of one put into each of the first n databases."""
    env = lmdb.open(str(base / "raw"), map_size=1 << 30, max_dbs=8)
    dbs = [env.open_db(f"db{i}".encode()) for i in range(7)]
    rng = random.Random(7)
    with env.begin(write=True) as txn:
        for db in dbs:
            for i in range(KEYSPACE):
                txn.put(b"key:%06d" % i, rng.randbytes(VALUE_BYTES), db=db)
    out: dict[int, list[float]] = defaultdict(list)
    sizes = (1, 2, 4, 7)
    for _ in range(commits):
        for n in sizes:  # interleaved, so a slow spell of the disk hits every size
            started = time.perf_counter()
            with env.begin(write=True) as txn:
                for db in dbs[:n]:
                    key = b"key:%06d" % rng.randrange(KEYSPACE)
                    txn.put(key, rng.randbytes(VALUE_BYTES), db=db)
            out[n].append(time.perf_counter() - started)
    env.close()
    return {n: statistics.median(out[n]) * 1e3 for n in sizes}


LOG_RECORD_BYTES = 512


def raw_log(base: Path, commits: int) -> dict[str, float]:
    """Median latency (ms) of writing one record and `fdatasync`ing it, per kind of log file."""
    record = random.Random(11).randbytes(LOG_RECORD_BYTES)
    growing = os.open(base / "append.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    ready = os.open(base / "ready.log", os.O_WRONLY | os.O_CREAT, 0o600)
    size = commits * LOG_RECORD_BYTES
    os.write(ready, bytes(size))  # written, not only reserved: no unwritten extents to convert
    os.fsync(ready)
    out: dict[str, list[float]] = defaultdict(list)
    try:
        for i in range(commits):  # interleaved, so a slow spell of the disk hits both
            started = time.perf_counter()
            os.write(growing, record)
            os.fdatasync(growing)
            out["appended to a growing file"].append(time.perf_counter() - started)
            started = time.perf_counter()
            os.pwrite(ready, record, i * LOG_RECORD_BYTES)
            os.fdatasync(ready)
            out["written into a zero-filled file"].append(time.perf_counter() - started)
    finally:
        os.close(growing)
        os.close(ready)
    return {kind: statistics.median(values) * 1e3 for kind, values in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="data directory base")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="SETs per run")
    parser.add_argument("--traced", type=int, default=500, help="SETs under strace")
    parser.add_argument("--commits", type=int, default=400, help="raw LMDB commits per size")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    for tool in ("redis-server", "redis-benchmark", "strace"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    base = Path(tempfile.mkdtemp(prefix="cl-", dir=args.dir))
    load_before = os.getloadavg()[0]
    servers = [start_redis(base), start_node(base, "node, fsync", True),
               start_node(base, "node, no fsync", False)]  # fmt: skip
    p50: dict[str, list[float]] = defaultdict(list)
    try:
        for run in range(args.runs):
            for server in servers if run % 2 == 0 else reversed(servers):
                latency = set_one_client(server, args.requests)
                p50[server.name].append(latency)
                log(f"run {run + 1}/{args.runs} {server.name:15s} p50 {latency:.3f} ms")
        log("tracing the fsync node's commits ...")
        traced = traced_commits(servers[1], args.traced, base)
    finally:
        for server in servers:
            server.stop()
    log("raw LMDB commits ...")
    try:
        raw = raw_lmdb(base, args.commits)
        log("raw log writes ...")
        own_log = raw_log(base, args.commits)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report = render(args, p50, traced, raw, own_log, load_before, os.getloadavg()[0])
    args.output.write_text(report)
    print(report)
    return 0


def render(
    args: argparse.Namespace,
    p50: dict[str, list[float]],
    traced: dict[str, float],
    raw: dict[int, float],
    own_log: dict[str, float],
    load_before: float,
    load_after: float,
) -> str:
    redis = statistics.median(p50["Redis"])
    lines = [
        "# A lone client's durable write: where its latency goes",
        "",
        f"`.venv/bin/python benchmarks/commit_latency.py --dir {args.dir} --runs {args.runs}`, "
        f"{time.strftime('%Y-%m-%d')}, load average {load_before:.2f} before and "
        f"{load_after:.2f} after. Data on {filesystem_of(args.dir)}.",
        "",
        f"redis-benchmark SET, 1 client, {args.requests:,} requests a run, "
        f"{VALUE_BYTES}-byte values; medians of {args.runs} interleaved runs:",
        "",
        "| server | p50 ms (median) | vs Redis | runs (p50 ms) |",
        "|---|---:|---:|---|",
    ]
    for name, values in p50.items():
        each = ", ".join(f"{v:.3f}" for v in values)
        mid = statistics.median(values)
        lines.append(f"| {name} | {mid:.3f} | {mid / redis:.2f}x | {each} |")
    lines += [
        "",
        f"The fsync node's commits under `strace` ({args.traced} single-client SETs, "
        f"{traced['commits']:.0f} commits; strace slows every call, so durations are upper "
        "bounds):",
        "",
        "| per commit | value |",
        "|---|---:|",
        f"| `fdatasync` calls | {traced['syncs_per_commit']:.2f} |",
        f"| data pages written (`pwrite64`) | {traced['data_pages_per_commit']:.1f} |",
        f"| `fdatasync` of the data file (median ms) | {traced['fdatasync_ms']:.3f} |",
        f"| meta page written through the `O_DSYNC` descriptor (median ms) | "
        f"{traced['meta_write_ms']:.3f} |",
        "",
        f"Raw LMDB in one process, sync on: one {VALUE_BYTES}-byte put into each of n "
        f"databases of {KEYSPACE:,} keys per transaction, median of {args.commits} commits:",
        "",
        "| databases written | commit ms (median) |",
        "|---:|---:|",
    ]
    lines += [f"| {n} | {ms:.3f} |" for n, ms in raw.items()]
    lines += [
        "",
        f"A log of one's own in this process: one {LOG_RECORD_BYTES}-byte record written and "
        f"`fdatasync`ed per commit, median of {args.commits}:",
        "",
        "| log file | write + fdatasync ms (median) | vs Redis's whole SET |",
        "|---|---:|---:|",
    ]
    lines += [f"| {kind} | {ms:.3f} | {ms / redis:.2f}x |" for kind, ms in own_log.items()]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
