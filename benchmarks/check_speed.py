"""How fast `swarmnode check` decides histories.

Four measurements, each the median of `--runs` runs:

1. The 52 Jepsen etcd histories in tests/check/data/jepsen-etcd (the whole
   set, read and checked file by file as the CLI does), with every verdict
   compared to verdicts.txt.
2. Long histories over 20 keys (JSONL, generated from a real register by
   `swarmnode.check.generate`, 10 to 100 clients each picking a random key;
   5% of operations fail, 5% time out, and a cas whose compare fails is
   recorded as `fail`, so fewer operations are checked than invoked):
   operations checked per second, beside the baseline of the same history
   checked as one partition (a model whose state is every key's value),
   which is what the search would face without P-compositionality.
3. How the search scales with concurrency on one key: 1,000 operations by
   5 to 50 clients. A verdict that needs more than `--limit` seconds is
   reported as unknown, which is what the checker answers then.
4. Reading: JSONL events parsed per second.

Run: .venv/bin/python benchmarks/check_speed.py [--runs 3] [--limit 30]
Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from swarmnode.check import CasRegister, Operation, check_file, check_history
from swarmnode.check.generate import register_events
from swarmnode.check.jsonl import read_jsonl

DATA = Path(__file__).resolve().parents[1] / "tests" / "check" / "data" / "jepsen-etcd"
REGISTER = CasRegister()


class AllKeys:
    """The baseline: every key in one state, so the history is one partition."""

    name = "all-keys"
    functions = REGISTER.functions

    def __init__(self, keys: int) -> None:
        self._keys = keys

    def init(self) -> Hashable:
        return (None,) * self._keys

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        k, inner = input
        ok, new = REGISTER.step(state[k], inner, output)
        return ok, (*state[:k], new, *state[k + 1 :])

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        return {None: list(ops)}

    def pure(self, op: Operation) -> bool:
        return REGISTER.pure(replace(op, input=op.input[1]))

    def describe(self, op: Operation) -> str:
        return REGISTER.describe(replace(op, input=op.input[1]))

    def describe_state(self, state: Any) -> str:
        return repr(state)


def one_partition(ops: list[Operation]) -> tuple[list[Operation], AllKeys]:
    keys = sorted({op.key for op in ops}, key=repr)
    number = {key: i for i, key in enumerate(keys)}
    return [replace(op, input=(number[op.key], op.input)) for op in ops], AllKeys(len(keys))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generated(operations: int, keys: int, clients: int, seed: int = 1) -> list[str]:
    events = register_events(
        random.Random(seed), operations=operations, keys=keys, processes=clients
    )
    return [json.dumps(e) for e in events]


def jepsen_set(runs: int) -> None:
    verdicts = dict(line.split() for line in (DATA / "verdicts.txt").read_text().splitlines())
    totals, slowest = [], []
    for run in range(runs):
        per_file = {}
        for name, expected in sorted(verdicts.items()):
            seconds, result = timed(lambda name=name: check_file(DATA / name))
            if result.verdict != expected:
                raise SystemExit(f"{name}: {result.verdict}, published verdict {expected}")
            per_file[name] = seconds
        totals.append(sum(per_file.values()))
        slowest.append(max(per_file.items(), key=lambda item: item[1]))
        log(f"jepsen set run {run + 1}/{runs}: {totals[-1]:.2f} s")
    command = [sys.executable, "-m", "swarmnode.check", *(str(DATA / n) for n in sorted(verdicts))]
    cli = []
    for _ in range(runs):
        seconds, done = timed(lambda: subprocess.run(command, capture_output=True, text=True))
        assert done.returncode == 1 and len(done.stdout.splitlines()) == len(verdicts)
        cli.append(seconds)
    name, _ = max(slowest, key=lambda item: item[1])
    lin = sum(v == "linearizable" for v in verdicts.values())
    print("## Jepsen etcd histories\n")
    print(
        "| histories | verdicts matching verdicts.txt | whole set, in process | "
        "whole set, `python -m swarmnode.check *.log` | slowest file |"
    )
    print("|---|---:|---:|---:|---|")
    print(
        f"| {len(verdicts)} ({lin} linearizable, {len(verdicts) - lin} not) | "
        f"{len(verdicts)}/{len(verdicts)} | {statistics.median(totals):.2f} s | "
        f"{statistics.median(cli):.2f} s | "
        f"{name}, {statistics.median(s for n, s in slowest if n == name):.2f} s |"
    )
    print()


def many_keys(runs: int, limit: float) -> None:
    print("## Long histories with many keys\n")
    print(
        "| operations invoked | keys | clients | ops checked | checked per key: time | ops/s |"
        " as one partition (baseline): time | ops/s | speed-up |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for operations, clients in ((1_000, 10), (1_000, 20), (10_000, 20), (10_000, 100)):
        lines = generated(operations, keys=20, clients=clients)
        ops = read_jsonl(lines, "generated", REGISTER.functions).ops
        per_key = []
        for _ in range(runs):
            seconds, result = timed(lambda ops=ops: check_history(ops, REGISTER))
            assert result.verdict == "linearizable", result.verdict
            per_key.append(seconds)
        merged, model = one_partition(ops)
        whole: list[float] = []
        whole_verdict = "linearizable"
        for _ in range(runs):
            seconds, result = timed(
                lambda merged=merged, model=model: check_history(merged, model, timeout=limit)
            )
            whole_verdict = result.verdict
            if whole_verdict == "unknown":
                break
            whole.append(seconds)
        part = statistics.median(per_key)
        if whole_verdict == "unknown":
            base_time, base_rate, ratio = (
                f"> {limit:.0f} s (unknown)",
                "-",
                f"> {limit / part:,.0f}x",
            )
        else:
            base = statistics.median(whole)
            base_time, base_rate = f"{base:.3f} s", f"{len(ops) / base:,.0f}"
            ratio = f"{base / part:,.1f}x"
        print(
            f"| {operations:,} | 20 | {clients} | {len(ops):,} | {part:.3f} s | "
            f"{len(ops) / part:,.0f} | "
            f"{base_time} | {base_rate} | {ratio} |"
        )
        log(
            f"many keys, {operations} operations, {clients} clients: {part:.3f} s per key, "
            f"baseline {base_time}"
        )
    print()


def concurrency(runs: int, limit: float) -> None:
    print("## Concurrency on one key (1,000 operations)\n")
    print("| clients | ops checked | verdict | time | search steps | configurations |")
    print("|---:|---:|---|---:|---:|---:|")
    for clients in (5, 10, 20, 30, 50):
        lines = generated(1_000, keys=1, clients=clients)
        ops = read_jsonl(lines, "generated", REGISTER.functions).ops
        times, result = [], None
        for _ in range(runs):
            seconds, result = timed(lambda ops=ops: check_history(ops, REGISTER, timeout=limit))
            times.append(seconds)
            if result.verdict == "unknown":
                break
        assert result is not None and result.verdict in ("linearizable", "unknown")
        shown = (
            f"> {limit:.0f} s"
            if result.verdict == "unknown"
            else f"{statistics.median(times):.3f} s"
        )
        print(
            f"| {clients} | {len(ops):,} | {result.verdict} | {shown} | "
            f"{result.stats.steps:,} | {result.stats.configurations:,} |"
        )
        log(f"{clients} clients on one key: {result.verdict}, {shown}")
    print()


def reading(runs: int) -> None:
    lines = generated(10_000, keys=20, clients=20)
    times = [
        timed(lambda: read_jsonl(lines, "generated", REGISTER.functions))[0] for _ in range(runs)
    ]
    seconds = statistics.median(times)
    print("## Reading JSONL\n")
    print("| events | time | events/s |")
    print("|---:|---:|---:|")
    print(f"| {len(lines):,} | {seconds:.3f} s | {len(lines) / seconds:,.0f} |")
    print()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--limit", type=float, default=30.0, help="seconds before a verdict is unknown")
    args = p.parse_args()
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.machine()}, {os.cpu_count()} cores, load average at start "
        f"{os.getloadavg()[0]:.1f}; medians of {args.runs} runs\n"
    )
    jepsen_set(args.runs)
    many_keys(args.runs, args.limit)
    concurrency(args.runs, args.limit)
    reading(args.runs)
    print(f"Load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
