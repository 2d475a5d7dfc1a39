"""What authorisation costs: gets and puts per second with tokens required, and without.

Two real `swarmnode run` processes in the same invocation, on the same disk:

- open: `[agents] require_tokens = false`, the client presents no token (the
  administrator's path: the `authorise` step resolves the principal and lets
  everything through);
- tokens: `[agents] require_tokens = true`, the client presents an agent's token
  on connecting, and every request is checked: the token's registration looked
  up, the namespace's access decided, and each put checked against the agent's
  quota (a quota large enough never to refuse, so the check runs in full).

Both write into namespaces of the same shape (the agent's private `agent:<id>`
and an open one, `bench`), each with 50 concurrent asyncio clients on their
own connections, each waiting for its reply before the next request. Rounds
alternate between the two nodes, and the table shows the median of `--runs`
rounds. The aim: tokens within 10% of open.

Run: .venv/bin/python benchmarks/auth_cost.py [--dir /var/tmp] [--runs 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from swarmnode.client import AsyncClient, Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nodeproc import start_node

VALUE = {"agent": "agent-7", "state": "working", "payload": "x" * 64}
CLIENTS = 50
KEYS = 1000


async def drive(socket: Path, token: str | None, ns: str, op: str, seconds: float) -> float:
    """Operations per second of CLIENTS clients doing `op` in `ns` for `seconds`."""
    clients = [AsyncClient(socket, timeout=60.0, token=token) for _ in range(CLIENTS)]
    for c in clients:
        await c.connect()
    done = 0
    stop = time.perf_counter() + seconds

    async def work(c: AsyncClient, offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop:
            key = f"k{i % KEYS}"
            if op == "put":
                await c.put(ns, key, VALUE)
            else:
                await c.get(ns, key)
            i += CLIENTS
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(work(c, i) for i, c in enumerate(clients)))
    elapsed = time.perf_counter() - started
    for c in clients:
        await c.close()
    return done / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sn-auth-", dir=args.dir))
    nodes = []
    try:
        open_cfg = base / "open.toml"
        open_cfg.write_text("[agents]\nrequire_tokens = false\n")
        tokens_cfg = base / "tokens.toml"
        tokens_cfg.write_text("[agents]\nrequire_tokens = true\n")
        open_node = start_node(base / "open", "--config", str(open_cfg), profile=None)
        nodes.append(open_node)
        tokens_node = start_node(base / "tokens", "--config", str(tokens_cfg), profile=None)
        nodes.append(tokens_node)
        with Client(tokens_node.socket, timeout=60) as admin:
            token = admin.agent_register(
                "bench", quota={"bytes": 1 << 40, "entries": 1 << 30}, lease=86400
            )["token"]
        setups = {
            ("open", "bench"): (open_node.socket, None, "bench"),
            ("open", "agent:bench"): (open_node.socket, None, "agent:bench"),
            ("tokens", "bench"): (tokens_node.socket, token, "bench"),
            ("tokens", "agent:bench"): (tokens_node.socket, token, "agent:bench"),
        }
        results: dict[tuple[str, str, str], list[float]] = {}
        for run in range(args.runs):
            for op in ("put", "get"):
                for (mode, ns), (socket, tok, name) in setups.items():
                    rate = uvloop.run(drive(socket, tok, name, op, args.seconds))
                    results.setdefault((mode, ns, op), []).append(rate)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
        lines = [
            "# Cost of authorisation",
            "",
            f"`benchmarks/auth_cost.py --runs {args.runs} --seconds {args.seconds:g}` on "
            f"{platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}), "
            f"data under {args.dir}. {CLIENTS} asyncio clients per measurement, each waiting "
            "for its reply; median of the runs, ops/s. `tokens`: tokens required, the client "
            "presents an agent's token, every request checked (access, and quota for puts); "
            "`open`: no tokens, the administrator's path.",
            "",
            "| op | namespace | open ops/s | tokens ops/s | tokens / open |",
            "|---|---|---|---|---|",
        ]
        for op in ("get", "put"):
            for ns in ("bench", "agent:bench"):
                o = statistics.median(results[("open", ns, op)])
                t = statistics.median(results[("tokens", ns, op)])
                lines.append(f"| {op} | {ns} | {o:,.0f} | {t:,.0f} | {t / o:.3f} |")
        lines.append("")
        lines.append("Every run (ops/s):")
        lines.append("")
        for key, rates in sorted(results.items()):
            lines.append(f"- {' '.join(key)}: " + ", ".join(f"{r:,.0f}" for r in rates))
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            args.out.write_text(text)
    finally:
        for node in nodes:
            node.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
