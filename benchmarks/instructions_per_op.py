"""Instructions the node executes per durable put and per get, under valgrind's callgrind.

Seconds per operation move with the host's load; instructions do not. This starts a
`swarmnode run` process under `valgrind --tool=callgrind` with instrumentation off, seeds
1,000 keys, switches instrumentation on (`callgrind_control -i on`), drives `--ops`
operations from `--clients` concurrent clients over the Unix socket, switches it off and
divides the node's total instructions (every thread: event loop, writer, indexer) by the
operations. Everything the node does per operation counts: framing, the service's steps,
the engine, the commit (fsync on) and the reply.

Each code tree given with `--tree NAME=PATH` runs the node from that tree (PYTHONPATH);
the clients are this checkout's. Example, the old code beside this branch:

    .venv/bin/python benchmarks/instructions_per_op.py --tree baseline=/work/baseline \\
        --tree branch=. [--prefix-path DIR-WITH-A-PORTABLE-HNSWLIB]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from swarmnode.client import AsyncClient, Client

VALUE = {"agent": "agent-7", "state": "working", "payload": "x" * 64}


class NodeUnderCallgrind:
    def __init__(self, tree: Path, directory: Path, prefix: str) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="cg-node-", dir=directory))
        self.out = self.base / "callgrind.out"
        config = self.base / "node.toml"
        # Valgrind cannot reserve the default map (LMDB then fails with EINVAL).
        config.write_text("[store]\nmap_size = 4294967296\n")
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={self.out}",
            sys.executable,
            "-P",  # `-c` would put the working directory first: a checkout there would win
            "-c",
            "import sys; from swarmnode.cli import main; sys.exit(main())",
            "run",
            "--data-dir",
            str(self.base / "data"),
            "--bind",
            "127.0.0.1:0",
            "--log-level",
            "warning",
            "--config",
            str(config),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")}
        path = str(tree.resolve())
        env.update(PYTHONPATH=f"{prefix}:{path}" if prefix else path, PYTHONDONTWRITEBYTECODE="1")
        env.update(PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("swarmnode ready:"):
            self.close()
            raise SystemExit(f"the node did not start under valgrind: {line!r}")
        self.socket = Path(line.split(" socket ", 1)[1].strip())

    def collect(self, on: bool) -> None:
        flag = "on" if on else "off"
        subprocess.run(
            ["callgrind_control", "-i", flag, str(self.proc.pid)],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def instructions(self) -> int:
        """Total Ir of the run, after the node has exited and written its profile."""
        text = self.out.read_text(errors="replace")
        found = re.search(r"^totals: (\d+)", text, re.MULTILINE)
        if found is None:
            raise SystemExit(f"no totals in {self.out}")
        return int(found.group(1))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def drive(socket: Path, op: str, clients: int, each: int) -> None:
    async def run() -> None:
        conns = [await AsyncClient(socket).connect() for _ in range(clients)]

        async def work(n: int, c: AsyncClient) -> None:
            for i in range(each):
                if op == "put":
                    await c.put("default", f"bench/{n}/{i}", VALUE)
                else:
                    await c.get("default", f"seed/{(n * each + i) % 1000}")

        await asyncio.gather(*(work(n, c) for n, c in enumerate(conns)))
        for c in conns:
            await c.close()

    uvloop.run(run())


def measure(tree: Path, op: str, clients: int, ops: int, directory: Path, prefix: str) -> float:
    node = NodeUnderCallgrind(tree, directory, prefix)
    try:
        with Client(node.socket) as c:
            for i in range(1000):
                c.put("default", f"seed/{i}", VALUE)
        drive(node.socket, op, clients, 4)  # warm: connections, caches, first batches
        time.sleep(0.5)
        node.collect(True)
        drive(node.socket, op, clients, ops // clients)
        node.collect(False)
        node.stop()
        return node.instructions() / (clients * (ops // clients))
    finally:
        node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--puts", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=5000)
    parser.add_argument(
        "--prefix-path",
        default="",
        help="put before each tree on PYTHONPATH: e.g. an hnswlib built without the "
        "instructions valgrind does not know (a wheel built for AVX-512 dies of SIGILL)",
    )
    args = parser.parse_args()
    trees = [(name, Path(path)) for name, path in (t.split("=", 1) for t in args.tree)]
    print(f"Instructions per operation of the node (callgrind), {args.clients} clients.")
    print()
    print("| code | durable put | get |")
    print("|---|---:|---:|")
    for name, path in trees:
        put = measure(path, "put", args.clients, args.puts, args.dir, args.prefix_path)
        get = measure(path, "get", args.clients, args.gets, args.dir, args.prefix_path)
        print(f"| {name} | {put:,.0f} | {get:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
