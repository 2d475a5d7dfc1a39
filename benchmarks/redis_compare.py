"""redis-benchmark against Redis and against a swarmnode node's RESP front end, in one run.

Both servers run on this host, on Unix sockets, with their data on the same
disk, and are driven by the same redis-benchmark binary with the same
arguments, interleaved run by run:

- Redis: Debian's redis-server with `appendonly yes` and `appendfsync always`
  (every write on disk before it is acknowledged, as a swarmnode write is);
- swarmnode: one node (fsync on, as in production) with the RESP server
  attached; `swarmnode run --resp-socket` when the runtime offers it, else
  tests/resp/resp_node.py, which attaches the same server to the same node.

Tests (100-byte values, keys drawn from 10,000 so GETs mostly hit):
SET and GET with 50 clients, SET with 1 client (median latency), and SET and
GET with 50 clients pipelining 16 requests each. Each figure is the median of
`--runs` runs; the ratio is swarmnode's over Redis's from the same run set.
CPU columns: CPU time each server process used per request (from /proc), the
share of the machine's two cores it took; redis-benchmark itself also needs a
core, so on this host the three compete.

The issue's aims (reported, not tuned for): SET with 50 clients at least 0.3x
Redis, GET with 50 clients at least 0.5x Redis, SET with 1 client median
latency within 2x Redis's.

`--profile` then samples the node with py-spy during a SET and a GET run and
reports where its time goes (RESP codec, RESP server and commands, the node's
operations and store, the event loop, the writer thread).

Run: .venv/bin/python benchmarks/redis_compare.py [--dir /var/tmp] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "tests" / "resp" / "resp_node.py"
RESULTS = ROOT / "benchmarks" / "results" / "redis_compare.md"
KEYSPACE = 10_000
VALUE_BYTES = 100


@dataclass(frozen=True)
class Test:
    name: str
    command: str
    clients: int
    pipeline: int
    requests: int
    """Requests per run against swarmnode; Redis gets `redis_factor` times more (it is faster,
    and a run that short would measure start-up)."""
    redis_factor: int = 4


TESTS = (
    Test("SET, 50 clients", "set", 50, 1, 20_000),
    Test("GET, 50 clients", "get", 50, 1, 60_000),
    Test("SET, 1 client", "set", 1, 1, 3_000),
    Test("SET, 50 clients, pipeline 16", "set", 50, 16, 40_000),
    Test("GET, 50 clients, pipeline 16", "get", 50, 16, 150_000),
)


@dataclass
class Result:
    rps: float
    p50_ms: float
    cpu_us: float
    """Server CPU time per request, microseconds."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def filesystem_of(path: Path) -> str:
    best, found = "", "unknown filesystem"
    resolved = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, fstype = line.split()[:3]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, found = mount, f"{fstype} on {device} (mounted at {mount})"
    return found


class Server:
    def __init__(self, name: str, proc: subprocess.Popen[bytes], socket: Path) -> None:
        self.name = name
        self.proc = proc
        self.socket = socket

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(60)


def wait_for(predicate, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.05)


def start_redis(base: Path) -> Server:
    socket = base / "redis.sock"
    cmd = [
        "redis-server", "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
        "--dir", str(base / "redis"), "--appendonly", "yes", "--appendfsync", "always",
        "--save", "", "--daemonize", "no", "--logfile", str(base / "redis.log"),
    ]  # fmt: skip
    (base / "redis").mkdir()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_for(lambda: socket.exists() or proc.poll() is not None, "redis-server start")
    if proc.poll() is not None:
        raise SystemExit(f"redis-server exited: {(base / 'redis.log').read_text()[-2000:]}")
    return Server("Redis", proc, socket)


def runtime_has_resp() -> bool:
    swarmnode = Path(sys.executable).parent / "swarmnode"
    help_text = subprocess.run(
        [str(swarmnode), "run", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return "--resp-socket" in help_text


def start_swarmnode(base: Path) -> Server:
    socket = base / "run" / "resp.sock"
    common = [
        "--data-dir", str(base / "node"), "--socket", str(base / "run" / "api.sock"),
        "--resp-socket", str(socket), "--bind", "127.0.0.1:0",
    ]  # fmt: skip
    if runtime_has_resp():
        cmd = [str(Path(sys.executable).parent / "swarmnode"), "run", *common]
        how = "swarmnode run --resp-socket"
    else:
        cmd = [sys.executable, str(LAUNCHER), *common]
        how = "tests/resp/resp_node.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    with open(base / "node.log", "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
    wait_for(lambda: socket.exists() or proc.poll() is not None, "swarmnode start")
    if proc.poll() is not None:
        raise SystemExit(f"the node exited: {(base / 'node.log').read_text()[-2000:]}")
    log(f"swarmnode started with {how}")
    return Server("swarmnode", proc, socket)


def benchmark(server: Server, test: Test) -> Result:
    requests = test.requests * (test.redis_factor if server.name == "Redis" else 1)
    cmd = [
        "redis-benchmark", "-s", str(server.socket), "-t", test.command, "-n", str(requests),
        "-c", str(test.clients), "-P", str(test.pipeline), "-d", str(VALUE_BYTES),
        "-r", str(KEYSPACE), "--csv",
    ]  # fmt: skip
    cpu_before = cpu_seconds(server.proc.pid)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=True)
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    if len(rows) != 1:
        raise SystemExit(f"unexpected redis-benchmark output: {done.stdout!r} {done.stderr!r}")
    row = rows[0]
    return Result(float(row["rps"]), float(row["p50_latency_ms"]), cpu / requests * 1e6)


def profile(server: Server, test: Test, seconds: int) -> Counter[str]:
    """py-spy samples of the node during one run of `test`, grouped by where time goes."""
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spy = subprocess.Popen(
        [py_spy, "record", "--pid", str(server.proc.pid), "--duration", str(seconds),
         "--rate", "200", "--format", "raw", "--output", str(raw), "--threads", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set() and spy.poll() is None:
            benchmark(server, test)

    driver = threading.Thread(target=load)
    driver.start()
    spy.wait()
    stop.set()
    driver.join()
    groups: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            groups[classify(stack)] += int(count)
    raw.unlink()
    return groups


GROUPS = (
    ("RESP codec (parse, encode)", re.compile(r"swarmnode/resp/codec\.py")),
    ("RESP server and commands (Python)", re.compile(r"swarmnode/resp/")),
    ("node: API dispatch, handlers, analytics", re.compile(r"swarmnode/(api|analytics)")),
    ("node: vector indexer thread and wrappers", re.compile(r"swarmnode/vectors/")),
    ("node: store, CRDTs, node, gossip", re.compile(r"swarmnode/")),
)
SOCKET_WRITE = re.compile(r"^_Connection\.(_flush|_push) \(swarmnode/resp/server\.py")


def classify(stack: str) -> str:
    """The group of a sample. A sample whose innermost frame is the connection's flush is in
    `transport.write` (py-spy shows no C frames): the reply's send syscall. Otherwise the
    innermost swarmnode frame decides; the writer thread and the loop's own work (uvloop:
    epoll, socket reads, callbacks; no swarmnode frame) are groups of their own."""
    frames = stack.split(";")
    if "storage/writer.py" in stack:
        return "writer thread (commit, fsync)"
    if SOCKET_WRITE.match(frames[-1]):
        return "reply send syscalls (transport.write)"
    for frame in reversed(frames):
        for name, pattern in GROUPS:
            if pattern.search(frame):
                return name
    if "uvloop" in stack or "asyncio" in stack:
        return "event loop (uvloop: epoll, reads, callbacks)"
    return "other threads and interpreter"


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="data directory base")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="sample the node with py-spy")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian packages redis-server, redis-tools)")
    base = Path(tempfile.mkdtemp(prefix="rc-", dir=args.dir))
    load_before = os.getloadavg()[0]
    servers = [start_redis(base), start_swarmnode(base)]
    results: dict[tuple[str, str], list[Result]] = defaultdict(list)
    profiles: dict[str, Counter[str]] = {}
    try:
        for run in range(args.runs):
            for test in TESTS:
                for server in servers if run % 2 == 0 else reversed(servers):
                    result = benchmark(server, test)
                    results[(test.name, server.name)].append(result)
                    log(f"run {run + 1}/{args.runs} {test.name:32s} {server.name:9s} "
                        f"{result.rps:>10,.0f} req/s  p50 {result.p50_ms:.3f} ms  "
                        f"cpu {result.cpu_us:.1f} us/req")  # fmt: skip
        if args.profile:
            node = servers[1]
            for test in (TESTS[0], TESTS[1]):
                log(f"profiling the node during {test.name} ...")
                profiles[test.name] = profile(node, test, 15)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    report = render(args, results, profiles, load_before, filesystem_of(args.dir))
    args.output.write_text(report)
    print(report)
    return 0


def render(
    args: argparse.Namespace,
    results: dict[tuple[str, str], list[Result]],
    profiles: dict[str, Counter[str]],
    load_before: float,
    filesystem: str,
) -> str:
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        "# swarmnode's RESP front end beside Redis (redis-benchmark)",
        "",
        f"`.venv/bin/python benchmarks/redis_compare.py --dir {args.dir} --runs {args.runs}"
        f"{' --profile' if args.profile else ''}`, {time.strftime('%Y-%m-%d')}, "
        f"load average {load_before:.2f} before the run.",
        "",
        f"Data directory: {args.dir} ({filesystem}). Host: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; {redis_version}. "
        f"Both servers on Unix sockets; values of {VALUE_BYTES} bytes; keys drawn from "
        f"{KEYSPACE:,}; medians of {args.runs} runs, interleaved.",
        "",
        "| test | Redis req/s | swarmnode req/s | ratio | Redis p50 ms | swarmnode p50 ms "
        "| CPU µs/req Redis / swarmnode |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    summary: dict[str, tuple[float, float, float, float]] = {}
    for test in TESTS:
        redis = results[(test.name, "Redis")]
        node = results[(test.name, "swarmnode")]
        r_rps, n_rps = median([x.rps for x in redis]), median([x.rps for x in node])
        r_p50, n_p50 = median([x.p50_ms for x in redis]), median([x.p50_ms for x in node])
        r_cpu, n_cpu = median([x.cpu_us for x in redis]), median([x.cpu_us for x in node])
        summary[test.name] = (r_rps, n_rps, r_p50, n_p50)
        lines.append(
            f"| {test.name} | {r_rps:,.0f} | {n_rps:,.0f} | {n_rps / r_rps:.2f}x | {r_p50:.3f} "
            f"| {n_p50:.3f} | {r_cpu:.1f} / {n_cpu:.1f} |"
        )
    lines += ["", "Every run (req/s, Redis / swarmnode):", ""]
    for test in TESTS:
        redis = ", ".join(f"{x.rps:,.0f}" for x in results[(test.name, "Redis")])
        node = ", ".join(f"{x.rps:,.0f}" for x in results[(test.name, "swarmnode")])
        lines.append(f"- {test.name}: {redis} / {node}")
    set50, get50, set1 = (summary[t.name] for t in TESTS[:3])
    aims = [
        ("SET, 50 clients, at least 0.3x Redis", set50[1] / set50[0], 0.3, "x"),
        ("GET, 50 clients, at least 0.5x Redis", get50[1] / get50[0], 0.5, "x"),
    ]
    lines += ["", "## The issue's aims", "", "| aim | measured | met |", "|---|---:|---|"]
    for name, value, bound, unit in aims:
        lines.append(f"| {name} | {value:.2f}{unit} | {'yes' if value >= bound else 'no'} |")
    latency_ratio = set1[3] / set1[2]
    lines.append(
        f"| SET, 1 client, median latency within 2x Redis's | {latency_ratio:.2f}x "
        f"({set1[3]:.3f} vs {set1[2]:.3f} ms) | {'yes' if latency_ratio <= 2 else 'no'} |"
    )
    if profiles:
        lines += ["", "## Where the node's time goes (py-spy, all threads, samples)", ""]
        for name, groups in profiles.items():
            total = sum(groups.values()) or 1
            lines += [f"{name}:", "", "| where | share of samples |", "|---|---:|"]
            for group, count in groups.most_common():
                lines.append(f"| {group} | {100 * count / total:.1f}% |")
            lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
