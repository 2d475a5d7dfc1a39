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

Two measures, taken by `layer_harness.py`: CPU seconds per request (moves with
the host's load) and, with `--callgrind`, instructions per request (does not).

    .venv/bin/python benchmarks/api_layer.py [--callgrind] [--tree NAME=PATH ...]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import layer_harness
from layer_harness import CountingTransport, StubNode, drive

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


def answer(op: str, args: dict[str, Any]) -> Any:
    """The stub node's answer to a `get`: an entry, at once."""
    return ENTRY


def request(op: str, i: int) -> bytes:
    from swarmnode.api.framing import encode_frame

    args: dict[str, Any] = {"ns": "default", "key": f"seed/{i % 1000}"}
    if op == "put":
        args["value"] = ENTRY["value"]
    return encode_frame({"id": i, "op": op, "args": args})


async def run(workload: str, rounds: int) -> tuple[float, int]:
    """(CPU seconds, requests) for `rounds` rounds of every connection sending one."""
    from swarmnode.api.server import ApiServer, _Connection

    node = StubNode(answer)
    op = "get" if workload == "floor" else workload
    payloads = [request(op, n * 4 + r) for n in range(CLIENTS) for r in range(4)]
    if workload == "floor":
        return await floor(node, payloads, rounds)
    server = ApiServer(Path(tempfile.gettempdir()) / "unused.sock", node.dispatch, None, {op})
    cpu = await drive(lambda: _Connection(server), node, payloads, rounds, lambda c: c.inflight)
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


if __name__ == "__main__":
    layer_harness.main(
        __doc__, f"msgpack API layer alone, {CLIENTS} connections", __file__, WORKLOADS, run,
        lambda workload: CLIENTS,
    )  # fmt: skip
