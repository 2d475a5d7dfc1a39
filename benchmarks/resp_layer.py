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

Two measures, taken by `layer_harness.py`: CPU seconds per command (moves with
the host's load) and, with `--callgrind`, instructions per command (does not).

    .venv/bin/python benchmarks/resp_layer.py [--callgrind] [--tree NAME=PATH ...]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import layer_harness
from layer_harness import StubNode, drive

CLIENTS = 50
VALUE = b"x" * 100
WORKLOADS = ("get", "set", "get-P16", "set-P16")


def answer(op: str, args: dict[str, Any]) -> Any:
    """The stub node's answers: an entry view to a `get`, the namespaces to `ns_list`."""
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
    if op == "ns_list":
        return {"namespaces": [{"name": "default"}, {"name": "swarm"}]}
    raise AssertionError(f"unexpected op {op}")


def depth_of(workload: str) -> int:
    """Commands per read: 16 for the `-P16` workloads, else 1."""
    return int(workload.partition("-P")[2] or 1)


def command(name: str, i: int) -> bytes:
    key = b"key:%012d" % (i % 10_000)
    if name == "get":
        return b"*2\r\n$3\r\nGET\r\n$16\r\n%s\r\n" % key
    return b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$%d\r\n%s\r\n" % (key, len(VALUE), VALUE)


async def run(workload: str, rounds: int) -> tuple[float, int]:
    """(CPU seconds, commands) for `rounds` rounds of every connection sending."""
    from swarmnode.resp.server import RespServer, _Connection

    name, depth = workload.partition("-P")[0], depth_of(workload)
    node = StubNode(answer)
    server = RespServer(node.dispatch, socket_path=Path(tempfile.gettempdir()) / "unused.sock")
    payloads = [
        b"".join(command(name, n * 7919 + r * depth + j) for j in range(depth))
        for n in range(CLIENTS)
        for r in range(4)
    ]
    cpu = await drive(lambda: _Connection(server), node, payloads, rounds, lambda c: c.pending)
    return cpu, rounds * CLIENTS * depth


if __name__ == "__main__":
    layer_harness.main(
        __doc__, f"RESP layer alone, {CLIENTS} connections", __file__, WORKLOADS, run,
        lambda workload: CLIENTS * depth_of(workload),
    )  # fmt: skip
