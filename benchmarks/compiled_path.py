"""What compiling the request path with Cython buys: the same source, run as Python and compiled.

Last session named "compile the hot modules, which keeps one source" as the one route left
towards the throughput aims of issue 16. This measures it without changing a line of source:
it exports a revision of this repository twice into a temporary directory, compiles MODULES
of the second copy with Cython 3 in pure-Python mode (a `.so` built beside each `.py`, which
the import system then prefers), and measures both copies in the same run:

- `instructions`: the node's instructions per durable put and per get under callgrind
  (instructions_per_op.py), unmoved by the host's load;
- `cpu`: node CPU per durable put and per get through the msgpack socket, 50 clients, the
  two copies alternating inside every round (chain_cpu.py);
- `redis`: redis-benchmark SET and GET with 50 clients against Debian's redis-server and a
  node of each copy with its RESP front end, interleaved run by run; ratios to Redis.

Needs Cython 3 (`pip install 'cython>=3,<4'`), a C compiler and Python's headers, valgrind
for `instructions`, redis-server and redis-benchmark for `redis`.

Run: .venv/bin/python benchmarks/compiled_path.py [--rev HEAD] [--rounds 5] [--runs 3] \\
    [--sections instructions,cpu,redis] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from chain_cpu import interleaved, table
from instructions_per_op import measure
from redis_compare import TESTS, Result, Server, benchmark, start_redis, wait_for

ROOT = Path(__file__).resolve().parents[1]

MODULES = (
    # RESP front end: parse, dispatch, reply
    "resp/codec", "resp/server", "resp/commands", "resp/routes", "resp/keys", "resp/args",
    "resp/session", "resp/table",
    # msgpack API: framing, connection, session
    "api/server", "api/framing", "api/session", "api/eager", "api/unixsock",
    # the service chain and the entry operations
    "service/chain", "service/steps", "service/args", "service/table", "service/ops/base",
    "service/ops/entries", "analytics", "metrics", "errors",
    # authorisation, quotas, activity
    "agents/authorise", "agents/quota", "agents/activity", "agents/access",
    # reads and the write path: engine, writer thread, LMDB store
    "storage/reader", "storage/engine", "storage/entries", "storage/views", "storage/writer",
    "storage/lmdb_store", "storage/layout", "storage/ops", "storage/usage", "storage/catalog",
    "storage/namespaces", "commands/writes", "commands/base", "commands/dispatch",
    # CRDT entries and their codec
    "crdt/codec", "crdt/entry", "crdt/lww", "crdt/values", "crdt/hlc", "crdt/dotkernel",
    "crdt/causal", "crdt/counter", "crdt/orset", "crdt/mvreg",
    # the node's side of a commit: Merkle leaves, recent deltas
    "node", "replication/merkle", "replication/recent", "replication/merge",
)  # fmt: skip
"""Modules (under swarmnode/) on the path of a put or a get, from the RESP or msgpack socket
to LMDB and back."""

DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}
"""Pure-Python mode as the code is: annotations are not turned into C types (they are not
checked today either), and functions keep Python's introspection (signatures, __wrapped__)."""


def export(rev: str, dest: Path) -> None:
    """The files of `rev` of this repository in `dest` (no build products, no .venv)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


BUILD = """
import json, os, sys
from Cython.Build import cythonize
from setuptools import Extension, setup
job = json.loads(sys.argv[1])
cpus = os.cpu_count() or 1
exts = [
    Extension("swarmnode." + m.replace("/", "."), [f"{job['tree']}/swarmnode/{m}.py"])
    for m in job["modules"]
]
setup(
    name="swarmnode-compiled",
    ext_modules=cythonize(exts, nthreads=cpus, quiet=True, compiler_directives=job["directives"]),
    script_args=[
        "build_ext", "-j", str(cpus), "--build-lib", job["lib"], "--build-temp", job["tmp"]
    ],
)
"""
"""The build, run in a child process: setuptools' `setup()` exits on error and reads the
working directory's pyproject.toml, so it runs from a scratch directory."""


def compile_tree(tree: Path, modules: tuple[str, ...]) -> float:
    """Builds each module of `tree` with Cython beside its source; seconds it took."""
    if importlib.util.find_spec("Cython") is None:
        raise SystemExit("Cython is not installed here: pip install 'cython>=3,<4'")
    work = Path(tempfile.mkdtemp(prefix="cy-build-"))
    job = {
        "tree": str(tree),
        "modules": list(modules),
        "directives": DIRECTIVES,
        "lib": str(work / "lib"),
        "tmp": str(work / "tmp"),
    }
    started = time.perf_counter()
    try:
        built = subprocess.run(
            [sys.executable, "-c", BUILD, json.dumps(job)],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise SystemExit(f"the Cython build failed:\n{built.stderr[-3000:]}")
        for so in (work / "lib").rglob("*.so"):
            shutil.copy2(so, tree / so.relative_to(work / "lib"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    missing = [m for m in modules if not list((tree / "swarmnode").glob(f"{m}.*.so"))]
    if missing:
        raise SystemExit(f"Cython built no extension for: {', '.join(missing)}")
    return time.perf_counter() - started


def instructions(trees: list[tuple[str, Path]], directory: Path) -> list[str]:
    """Instructions per put and get of each tree: the figure the host's load leaves alone."""
    out = ["| code | instructions per durable put | per get |", "|---|---:|---:|"]
    found: dict[str, tuple[float, float]] = {}
    for name, path in trees:
        found[name] = (
            measure(path, "put", 50, 2000, directory, ""),
            measure(path, "get", 50, 5000, directory, ""),
        )
        put, get = found[name]
        out.append(f"| {name} | {put:,.0f} | {get:,.0f} |")
    (first, (put0, get0)), (last, (put1, get1)) = (
        (trees[0][0], found[trees[0][0]]),
        (trees[-1][0], found[trees[-1][0]]),
    )
    out.append(f"| {last} / {first} | {put1 / put0:.3f} | {get1 / get0:.3f} |")
    return out


def cpu(
    trees: list[tuple[str, Path]], directory: Path, rounds: int, puts: int, gets: int
) -> list[str]:
    """Node CPU per put and get of each tree, the trees alternating inside every round (and
    swapping who goes first) so a noisy spell of the shared host hits both alike."""
    used, rates, loads = interleaved(trees, directory, 50, rounds, puts, gets)
    return [
        f"{rounds} interleaved rounds, 50 clients, medians; load average (1 min) after each "
        f"round: {', '.join(f'{x:.1f}' for x in loads)}",
        "",
        *table(trees, used, rates),
    ]


def start_resp_node(base: Path, tree: Path, name: str) -> Server:
    """A node run from `tree` with its RESP front end (redis_compare.py's start_swarmnode runs
    this checkout only)."""
    socket = base / name / "resp.sock"
    cmd = [
        sys.executable, "-P", "-c", "import sys; from swarmnode.cli import main; sys.exit(main())",
        "run", "--data-dir", str(base / name / "data"), "--socket", str(base / name / "api.sock"),
        "--resp-socket", str(socket), "--bind", "127.0.0.1:0", "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")}
    env.update(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", OPENBLAS_NUM_THREADS="1")
    (base / name).mkdir()
    with open(base / name / "node.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    wait_for(lambda: socket.exists() or proc.poll() is not None, f"{name} start")
    if proc.poll() is not None:
        raise SystemExit(f"{name} exited: {(base / name / 'node.log').read_text()[-2000:]}")
    return Server(name, proc, socket)


def redis(trees: list[tuple[str, Path]], directory: Path, runs: int) -> list[str]:
    """redis-benchmark SET and GET (50 clients, no pipelining) against Redis and a node of each
    tree, every server in each run: the issue's aims are ratios to Redis."""
    tests = [t for t in TESTS if t.clients == 50 and t.pipeline == 1]
    base = Path(tempfile.mkdtemp(prefix="cy-rc-", dir=directory))
    servers: list[Server] = []
    results: dict[tuple[str, str], list[Result]] = defaultdict(list)
    loads = []
    try:
        servers.append(start_redis(base))
        servers += [start_resp_node(base, path, name) for name, path in trees]
        for run in range(runs):
            for test in tests:
                for server in servers if run % 2 == 0 else reversed(servers):
                    results[test.name, server.name].append(benchmark(server, test))
            loads.append(os.getloadavg()[0])
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    out = [
        f"{runs} runs, medians, 100-byte values, Unix sockets; load average (1 min) after each "
        f"run: {', '.join(f'{x:.1f}' for x in loads)}",
        "",
        "| test | server | req/s | vs Redis | p50 ms | server CPU µs/req |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for test in tests:
        redis_rps = statistics.median(r.rps for r in results[test.name, "Redis"])
        for server in servers:
            rows = results[test.name, server.name]
            rps = statistics.median(r.rps for r in rows)
            p50 = statistics.median(r.p50_ms for r in rows)
            us = statistics.median(r.cpu_us for r in rows)
            out.append(
                f"| {test.name} | {server.name} | {rps:,.0f} | {rps / redis_rps:.2f}x "
                f"| {p50:.3f} | {us:.1f} |"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD", help="the revision to export and compile")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="data directories")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the cpu section")
    parser.add_argument("--puts", type=int, default=6000, help="per round and tree (cpu)")
    parser.add_argument("--gets", type=int, default=20000, help="per round and tree (cpu)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the redis section")
    parser.add_argument("--sections", default="instructions,cpu,redis")
    parser.add_argument(
        "--keep", type=Path, help="build the two trees here and keep them (a pair there is reused)"
    )
    args = parser.parse_args()
    sections = args.sections.split(",")
    unknown = set(sections) - {"instructions", "cpu", "redis"}
    if unknown:
        raise SystemExit(f"unknown sections: {', '.join(sorted(unknown))}")
    top = args.keep or Path(tempfile.mkdtemp(prefix="cy-trees-"))
    trees = [("python", top / "python"), ("compiled", top / "compiled")]
    try:
        if (top / "compiled").exists():
            built = f"the pair of trees in {top}, built by an earlier run"
        else:
            for _, path in trees:
                export(args.rev, path)
            built = f"compiled with Cython in {compile_tree(trees[1][1], MODULES):.0f} s"
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", args.rev],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        print(
            f"{args.rev} ({commit}): {len(MODULES)} modules {built}; {os.cpu_count()} cores; "
            f"{time.strftime('%Y-%m-%d %H:%M')} UTC",
            flush=True,
        )
        for section in sections:
            print(f"\n### {section}\n", flush=True)
            if section == "instructions":
                lines = instructions(trees, args.dir)
            elif section == "cpu":
                lines = cpu(trees, args.dir, args.rounds, args.puts, args.gets)
            else:
                lines = redis(trees, args.dir, args.runs)
            print("\n".join(lines), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
