"""Instructions a node executes per redis-benchmark request (callgrind), per code tree.

Node CPU per request measured from /proc moves with the host's load and with how
many requests each wake-up of the loop finds (a loaded host batches less); the
instructions a node executes per request under callgrind do not depend on the
load. This starts `swarmnode run --resp-socket` under `valgrind --tool=callgrind`
with instrumentation off, fills the keys, then for each test zeroes the counters,
switches instrumentation on, runs redis-benchmark (100-byte values, keys from
10,000), switches it off and dumps: instructions per request are the dump's
total over the requests. Every thread counts (event loop, writer, indexer), so
SET includes the commit.

The node is slowed about 50x under valgrind, so each loop wake-up finds more
requests than it would at full speed; compare trees with each other, not with
the figures of redis_compare.py.

    .venv/bin/python benchmarks/resp_instructions.py --tree base=/path/to/old --tree this=.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = (
    # (name, command, clients, pipeline, requests)
    ("GET, 50 clients", "get", 50, 1, 6000),
    ("SET, 50 clients", "set", 50, 1, 2000),
    ("GET, 50 clients, pipeline 16", "get", 50, 16, 16000),
    ("SET, 50 clients, pipeline 16", "set", 50, 16, 4000),
)


def bench(socket: Path, command: str, clients: int, pipeline: int, requests: int) -> None:
    subprocess.run(
        ["redis-benchmark", "-s", str(socket), "-t", command, "-n", str(requests),
         "-c", str(clients), "-P", str(pipeline), "-d", "100", "-r", "10000", "-q"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800,
    )  # fmt: skip


def control(pid: int, *flags: str) -> None:
    subprocess.run(
        ["callgrind_control", *flags, str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(tree: Path, directory: Path) -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix="cg-resp-", dir=directory))
    out = base / "callgrind.out"
    config = base / "node.toml"
    config.write_text("[store]\nmap_size = 4294967296\n")  # valgrind cannot map the default
    socket = base / "resp.sock"
    cmd = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, "-P", "-c", "import sys; from swarmnode.cli import main; sys.exit(main())",
        "run", "--data-dir", str(base / "data"), "--socket", str(base / "api.sock"),
        "--resp-socket", str(socket), "--bind", "127.0.0.1:0", "--log-level", "warning",
        "--config", str(config),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")}
    env.update(PYTHONPATH=str(tree.resolve()), PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=base
    )
    try:
        deadline = time.monotonic() + 600
        while not socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the node did not start under valgrind ({tree})")
            time.sleep(0.5)
        bench(socket, "set", 50, 16, 10000)  # the keys GET reads, and a warm node
        results = {}
        for name, command, clients, pipeline, requests in TESTS:
            bench(socket, command, clients, pipeline, 500)
            control(proc.pid, "-z")
            control(proc.pid, "-i", "on")
            bench(socket, command, clients, pipeline, requests)
            control(proc.pid, "-i", "off")
            before = set(base.glob("callgrind.out.*"))
            control(proc.pid, "-d")
            dump = next(iter(set(base.glob("callgrind.out.*")) - before))
            found = re.search(r"^totals: (\d+)", dump.read_text(errors="replace"), re.M)
            assert found is not None, dump
            results[name] = int(found.group(1)) / requests
        return results
    finally:
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    print("Instructions per request of the node (callgrind), redis-benchmark.\n")
    print("| code | " + " | ".join(t[0] for t in TESTS) + " |")
    print("|---|" + "---:|" * len(TESTS))
    for spec in args.tree:
        name, path = spec.split("=", 1)
        results = measure(Path(path), args.dir)
        print(f"| {name} | " + " | ".join(f"{results[t[0]]:,.0f}" for t in TESTS) + " |")


if __name__ == "__main__":
    main()
