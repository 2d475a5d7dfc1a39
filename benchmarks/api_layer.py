"""The msgpack API server's own cost per request, without the node: decode, start, reply.

An `ApiServer`'s connections (asyncio protocols) are driven through
`data_received` with a stub dispatch (a `get` returns an entry at once, so it
is answered inside the read callback; a `put` waits for a "group commit" that
the driver completes once per round, so it continues in a task) and a
transport that only counts bytes. What is left is what the server itself does
per request: framing, the request check, the eager start or the task, the
reply's encoding, back-pressure bookkeeping and the `write` call (not the
kernel's work behind it). `floor` is the least any server must do: decode a
frame, step the stub's coroutine and encode its reply, with nothing else.

Trees from before the server was a protocol (a85126a and older) cannot be
driven this way; compare them with `instructions_per_op.py`, the whole node.

Two measures: CPU seconds per request (`time.process_time`, median of
`--repeats`; moves with the host's load), and with `--callgrind` the
instructions per request under valgrind (load-independent: two runs of N and
2N rounds, the difference divided by the extra requests, so start-up cancels).

    .venv/bin/python benchmarks/api_layer.py [--callgrind] [--tree NAME=PATH ...]
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
ENTRY = {
    "ns": "default",
    "key": "seed/1",
    "type": "register",
    "value": {"agent": "agent-7", "state": "working", "payload": "x" * 64},
    "meta": {},
    "ts": 1,
    "expires_at": None,
}
WORKLOADS = ("get", "put", "floor")


class CountingTransport:
    """What a `_Connection` needs of a transport; counts the bytes written."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

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
            return ENTRY
        done = asyncio.get_running_loop().create_future()
        self.waiting.append(done)
        await done
        return {"ts": 1}

    def committed(self) -> None:
        for done in self.waiting:
            done.set_result(None)
        self.waiting.clear()


def request(op: str, i: int) -> bytes:
    from swarmnode.api.framing import encode_frame

    args: dict[str, Any] = {"ns": "default", "key": f"seed/{i % 1000}"}
    if op == "put":
        args["value"] = ENTRY["value"]
    return encode_frame({"id": i, "op": op, "args": args})


async def run(workload: str, rounds: int) -> tuple[float, int]:
    """(CPU seconds, requests) for `rounds` rounds of every connection sending one."""
    from swarmnode.api.server import ApiServer, _Connection

    node = StubNode()
    op = "get" if workload == "floor" else workload
    payloads = [request(op, n * 4 + r) for n in range(CLIENTS) for r in range(4)]
    if workload == "floor":
        return await floor(node, payloads, rounds)
    server = ApiServer(Path(tempfile.gettempdir()) / "unused.sock", node.dispatch, None, {op})
    transports = [CountingTransport() for _ in range(CLIENTS)]
    connections = []
    for transport in transports:
        connection = _Connection(server)
        connection.connection_made(transport)  # type: ignore[arg-type]
        connections.append(connection)
    start = time.process_time()
    for r in range(rounds):
        for n, connection in enumerate(connections):
            connection.data_received(payloads[n * 4 + r % 4])
        node.committed()
        while any(c.inflight for c in connections):
            await asyncio.sleep(0)
    cpu = time.process_time() - start
    assert all(t.written for t in transports)
    return cpu, rounds * CLIENTS


async def floor(node: StubNode, payloads: list[bytes], rounds: int) -> tuple[float, int]:
    from swarmnode.api.framing import RequestDecoder, encode_result
    from swarmnode.api.limits import ApiLimits
    from swarmnode.api.server import RequestContext

    decoders = [RequestDecoder() for _ in range(CLIENTS)]
    limits, transport = ApiLimits(), CountingTransport()
    start = time.process_time()
    for r in range(rounds):
        for n, decoder in enumerate(decoders):
            for req in decoder.feed(payloads[n * 4 + r % 4]):
                coroutine = node.dispatch(req.op, req.args, RequestContext(n, req.id, limits))
                try:
                    coroutine.send(None)
                except StopIteration as finished:
                    transport.write(encode_result(req.id, finished.value))
    return time.process_time() - start, rounds * CLIENTS


def callgrind(tree: Path, workload: str, rounds: int) -> float:
    """Instructions per request of `workload` from `tree` (N and 2N rounds, the difference)."""
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
    return (totals[1] - totals[0]) / (rounds * CLIENTS)


def child(workload: str, rounds: int, repeats: int) -> float:
    """CPU µs per request, the median of `repeats` runs in this process."""
    import uvloop

    samples = []
    for _ in range(repeats):
        cpu, requests = uvloop.run(run(workload, rounds))
        samples.append(cpu / requests * 1e6)
    return statistics.median(samples)


def cpu_per_request(tree: Path, workload: str, rounds: int, repeats: int) -> float:
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
    print(f"msgpack API layer alone, {CLIENTS} connections, {unit} per request.\n")
    print("| code | " + " | ".join(workloads) + " |")
    print("|---|" + "---:|" * len(workloads))
    for name, path in trees:
        if args.callgrind:
            rounds = args.rounds or 40
            cells = [f"{callgrind(Path(path), w, rounds):,.0f}" for w in workloads]
        else:
            rounds = args.rounds or 400
            cells = [
                f"{cpu_per_request(Path(path), w, rounds, args.repeats):.2f}" for w in workloads
            ]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
