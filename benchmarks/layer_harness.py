"""What `resp_layer.py` and `api_layer.py` share: a server layer driven alone, without a node.

Each script drives its server's connection objects through `data_received`
with a stub node and a transport that only counts, and measures the layer's
cost per request two ways: CPU seconds (`time.process_time`, median of
`--repeats`, in a child process running the tree under test), and with
`--callgrind` instructions under valgrind (two runs of N and 2N rounds, the
difference divided by the extra requests, so start-up cancels).

A script gives `main` its workloads and a `run(workload, rounds)` coroutine
returning (CPU seconds, requests); this module does the rest.
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
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

Run = Callable[[str, int], Coroutine[Any, Any, tuple[float, int]]]


class CountingTransport:
    """What a server's connection needs of a transport; counts the bytes and calls to `write`."""

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
    """A `put` waits for the round's commit, like a durable write; anything else is answered
    at once by `answer`."""

    def __init__(self, answer: Callable[[str, dict[str, Any]], Any]) -> None:
        self.answer = answer
        self.waiting: list[asyncio.Future[None]] = []

    async def dispatch(self, op: str, args: dict[str, Any], ctx: Any) -> Any:
        if op != "put":
            return self.answer(op, args)
        done = asyncio.get_running_loop().create_future()
        self.waiting.append(done)
        await done
        return {"ts": 1}

    def committed(self) -> None:
        for done in self.waiting:
            done.set_result(None)
        self.waiting.clear()


async def drive(
    make: Callable[[], Any],
    node: StubNode,
    payloads: list[bytes],
    rounds: int,
    busy: Callable[[Any], bool],
) -> float:
    """CPU seconds for `rounds` rounds in which each of `len(payloads) // 4` connections (made
    by `make`, each on a `CountingTransport`) reads one of its four payloads, the node's
    puts commit, and the loop turns until no connection is `busy`."""
    clients = len(payloads) // 4
    transports = [CountingTransport() for _ in range(clients)]
    connections = []
    for transport in transports:
        connection = make()
        connection.connection_made(transport)
        connections.append(connection)
    start = time.process_time()
    for r in range(rounds):
        for n, connection in enumerate(connections):
            connection.data_received(payloads[n * 4 + r % 4])
        node.committed()
        while any(busy(c) for c in connections):
            await asyncio.sleep(0)
    cpu = time.process_time() - start
    if not all(t.written for t in transports):
        raise RuntimeError("a connection wrote no reply: the driver did not reach the server")
    return cpu


def _child(run: Run, workload: str, rounds: int, repeats: int) -> float:
    """CPU µs per request, the median of `repeats` runs in this process."""
    import uvloop

    samples = []
    for _ in range(repeats):
        cpu, requests = uvloop.run(run(workload, rounds))
        samples.append(cpu / requests * 1e6)
    return statistics.median(samples)


def _child_env(tree: Path) -> dict[str, str]:
    """The tree under test first on the path, then this directory (for this module): the
    child runs with `-P`, so the script's own directory is not searched first."""
    here = Path(__file__).resolve().parent
    return {**os.environ, "PYTHONPATH": f"{tree.resolve()}{os.pathsep}{here}"}


def _child_command(script: str, workload: str, rounds: int, repeats: int) -> list[str]:
    return [sys.executable, "-P", script, "--child", workload, "--rounds", str(rounds),
            "--repeats", str(repeats)]  # fmt: skip


def _cpu_per_request(script: str, tree: Path, workload: str, rounds: int, repeats: int) -> float:
    done = subprocess.run(
        _child_command(script, workload, rounds, repeats),
        check=True, capture_output=True, text=True,
        env=_child_env(tree),
    )  # fmt: skip
    return float(done.stdout)


def _callgrind(script: str, tree: Path, workload: str, rounds: int, per_round: int) -> float:
    """Instructions per request of `workload` from `tree` (N and 2N rounds, the difference);
    `per_round`: requests in one round."""
    totals = []
    for n in (rounds, 2 * rounds):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cg.out"
            env = {**_child_env(tree), "PYTHONHASHSEED": "0"}
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                 *_child_command(script, workload, n, 1)],
                check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            found = re.search(r"^totals: (\d+)", out.read_text(errors="replace"), re.MULTILINE)
            assert found is not None
            totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / (rounds * per_round)


def main(
    doc: str,
    title: str,
    script: str,
    workloads: tuple[str, ...],
    run: Run,
    per_round: Callable[[str], int],
) -> None:
    """The command line of a layer benchmark: a table of the layer's cost per request for
    each workload and source tree. `per_round(workload)`: requests in one round of it."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH (default: .)")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", action="append", choices=workloads)
    parser.add_argument("--child", choices=workloads, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(_child(run, args.child, args.rounds, args.repeats))
        return
    chosen = args.workload or list(workloads)
    trees = [t.split("=", 1) for t in args.tree] or [["this", str(Path(script).parents[1])]]
    unit = "instructions" if args.callgrind else "CPU µs (median of runs)"
    print(f"{title}, {unit} per request.\n")
    print("| code | " + " | ".join(chosen) + " |")
    print("|---|" + "---:|" * len(chosen))
    for name, path in trees:
        tree = Path(path)
        if args.callgrind:
            rounds = args.rounds or 40
            cells = [f"{_callgrind(script, tree, w, rounds, per_round(w)):,.0f}" for w in chosen]
        else:
            rounds = args.rounds or 400
            cells = [
                f"{_cpu_per_request(script, tree, w, rounds, args.repeats):.2f}" for w in chosen
            ]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
