"""The RESP front end's own cost per command, without the node: parse, dispatch, reply.

A `RespServer`'s connections are driven through `data_received` with a stub
node (a `get` returns an entry view at once; a `put` waits for a "group
commit" that the driver completes once per round, as the writer thread's
fsync completes every write queued before it) and a transport that only
counts bytes. What is left is what the front end itself does per command:
parsing, the command table, key mapping, the handler, reply encoding,
ordering, back-pressure bookkeeping and the `write` call (not the kernel's
work behind it).

Workloads are redis-benchmark's: `GET key:NNNNNNNNNNNN` and `SET key:NNN
<100 bytes>` from 50 connections, one command per read (`-P 1`) or 16 per read
(`-P 16`).

Two measures: CPU seconds per command (`time.process_time`, median of
`--repeats`; moves with the host's load), and with `--callgrind` the
instructions per command under valgrind (load-independent: two runs of N and
2N rounds, the difference divided by the extra commands, so start-up cancels).

    .venv/bin/python benchmarks/resp_layer.py [--callgrind] [--tree NAME=PATH ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLIENTS = 50
VALUE = b"x" * 100
WORKLOADS = ("get", "set", "get-P16", "set-P16")


class CountingTransport:
    """What a `_Connection` needs of a transport; counts the bytes and calls to `write`."""

    def __init__(self) -> None:
        self.written = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


class StubNode:
    """`get` answers at once; `put` waits for the round's commit, like a durable write."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []

    async def dispatch(self, op: str, args: dict[str, Any], ctx: Any) -> Any:
        if op == "get":
            return {
                "ns": args["ns"],
                "key": args["key"],
                "type": "register",
                "value": VALUE.decode(),
                "meta": {},
                "ts": 1,
                "expires_at": None,
            }
        if op == "put":
            done = asyncio.get_running_loop().create_future()
            self.waiting.append(done)
            await done
            return {"ts": 1}
        if op == "ns_list":
            return {"namespaces": [{"name": "default"}, {"name": "swarm"}]}
        raise AssertionError(f"unexpected op {op}")

    def committed(self) -> None:
        for done in self.waiting:
            done.set_result(None)
        self.waiting.clear()


def command(name: str, i: int) -> bytes:
    key = b"key:%012d" % (i % 10_000)
    if name == "get":
        return b"*2\r\n$3\r\nGET\r\n$16\r\n%s\r\n" % key
    return b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$%d\r\n%s\r\n" % (key, len(VALUE), VALUE)


async def run(workload: str, rounds: int) -> tuple[float, int, int]:
    """(CPU seconds, commands, writes) for `rounds` rounds of every connection sending."""
    from swarmnode.resp.server import RespServer, _Connection

    name, _, pipe = workload.partition("-P")
    depth = int(pipe or 1)
    node = StubNode()
    server = RespServer(node.dispatch, socket_path=Path(tempfile.gettempdir()) / "unused.sock")
    transports = [CountingTransport() for _ in range(CLIENTS)]
    connections = []
    for transport in transports:
        connection = _Connection(server)
        connection.connection_made(transport)  # type: ignore[arg-type]
        connections.append(connection)
    payloads = [
        b"".join(command(name, n * 7919 + r * depth + j) for j in range(depth))
        for n in range(CLIENTS)
        for r in range(4)
    ]
    start = time.process_time()
    for r in range(rounds):
        for n, connection in enumerate(connections):
            connection.data_received(payloads[n * 4 + r % 4])
        node.committed()
        while any(c.pending for c in connections):
            await asyncio.sleep(0)
    cpu = time.process_time() - start
    return cpu, rounds * CLIENTS * depth, sum(t.writes for t in transports)


def callgrind(tree: Path, workload: str, rounds: int) -> float:
    """Instructions per command of `workload` from `tree` (N and 2N rounds, the difference)."""
    totals = []
    for n in (rounds, 2 * rounds):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cg.out"
            env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "PYTHONHASHSEED": "0"}
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                 "-P", __file__, "--child", workload, "--rounds", str(n), "--repeats", "1"],
                check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            found = re.search(r"^totals: (\d+)", out.read_text(errors="replace"), re.MULTILINE)
            assert found is not None
            totals.append(int(found.group(1)))
    depth = int(workload.partition("-P")[2] or 1)
    return (totals[1] - totals[0]) / (rounds * CLIENTS * depth)


def child(workload: str, rounds: int, repeats: int) -> float:
    """CPU µs per command, the median of `repeats` runs in this process."""
    import uvloop

    samples = []
    for _ in range(repeats):
        cpu, commands, _ = uvloop.run(run(workload, rounds))
        samples.append(cpu / commands * 1e6)
    return statistics.median(samples)


def cpu_per_command(tree: Path, workload: str, rounds: int, repeats: int) -> float:
    done = subprocess.run(
        [sys.executable, "-P", __file__, "--child", workload, "--rounds", str(rounds),
         "--repeats", str(repeats)],
        check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tree.resolve())},
    )  # fmt: skip
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH (default: .)")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(child(args.child, args.rounds, args.repeats))
        return
    workloads = args.workload or list(WORKLOADS)
    trees = [t.split("=", 1) for t in args.tree] or [["this", str(Path(__file__).parents[1])]]
    unit = "instructions" if args.callgrind else "CPU µs (median of runs)"
    print(f"RESP layer alone, {CLIENTS} connections, {unit} per command.\n")
    print("| code | " + " | ".join(workloads) + " |")
    print("|---|" + "---:|" * len(workloads))
    for name, path in trees:
        if args.callgrind:
            rounds = args.rounds or 40
            cells = [f"{callgrind(Path(path), w, rounds):,.0f}" for w in workloads]
        else:
            rounds = args.rounds or 400
            cells = [
                f"{cpu_per_command(Path(path), w, rounds, args.repeats):.2f}" for w in workloads
            ]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
