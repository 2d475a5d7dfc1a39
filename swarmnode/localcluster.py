"""A local cluster of real node processes on one host, for trying swarmnode out.

`./dev cluster` (or `python -m swarmnode.localcluster`) starts three nodes on
127.0.0.1 with their own data directories, each joined to the first, prints how
to reach each one, and stops them all on Ctrl-C. The nodes are ordinary
`swarmnode run` processes with the `local` timer profile.

A node that exits (say, after `kill -9`, to watch the others declare it dead)
is started again on its own data directory, so it rejoins and catches up
through anti-entropy; one that exits within `--min-uptime` seconds of its start
is left stopped, since restarting it would only repeat the failure its log
explains. `--no-restart` leaves every exited node stopped.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from swarmnode.paths import default_data_dir

RESTART_DELAY_S = 1.0


def start_node(
    index: int, base_dir: Path, port: int, seed: str | None
) -> tuple[subprocess.Popen[str], str]:
    data_dir = base_dir / f"node{index}"
    cmd = [
        sys.executable,
        "-m",
        "swarmnode.cli",
        "run",
        "--profile",
        "local",
        "--data-dir",
        str(data_dir),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    if seed:
        cmd += ["--join", seed]
    log = open(base_dir / f"node{index}.log", "a")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("swarmnode ready"):
        proc.kill()
        raise SystemExit(f"node {index} did not start; see {base_dir / f'node{index}.log'}")
    return proc, line.strip()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="swarmnode-localcluster", description=__doc__)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--base-dir", type=Path, default=default_data_dir() / "localcluster")
    p.add_argument("--base-port", type=int, default=7117)
    p.add_argument("--no-restart", action="store_true", help="leave a node that exits stopped")
    p.add_argument(
        "--min-uptime",
        type=float,
        default=10.0,
        help="seconds; a node that exits sooner after starting is not restarted (default 10)",
    )
    args = p.parse_args(argv)
    args.base_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    procs: dict[int, subprocess.Popen[str]] = {}
    started: dict[int, float] = {}
    ports = {i: args.base_port + i - 1 for i in range(1, args.nodes + 1)}
    seed = f"127.0.0.1:{ports[1]}"
    try:
        for i in ports:
            procs[i], ready = start_node(i, args.base_dir, ports[i], None if i == 1 else seed)
            started[i] = time.monotonic()
            sock = ready.rsplit(" socket ", 1)[-1]
            print(f"node{i}: {ready}")
            print(f"        export SWARMNODE_SOCKET={sock}")
        print(f"{args.nodes} nodes running; logs in {args.base_dir}.", flush=True)
        print("Ctrl-C stops them.", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        while procs:
            time.sleep(0.5)
            for i, proc in list(procs.items()):
                if proc.poll() is not None:
                    del procs[i]
                    _restart(i, proc.returncode, args, ports, procs, started)
        print("no node left running", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        print("stopped", file=sys.stderr)


def _restart(
    i: int,
    code: int,
    args: argparse.Namespace,
    ports: dict[int, int],
    procs: dict[int, subprocess.Popen[str]],
    started: dict[int, float],
) -> None:
    """Start node i again after it exited with `code`, unless that would only loop."""
    how = f"signal {-code}" if code < 0 else f"code {code}"
    log = args.base_dir / f"node{i}.log"
    if args.no_restart:
        print(f"node{i} exited ({how}); leaving it stopped, see {log}", file=sys.stderr, flush=True)
        return
    if time.monotonic() - started[i] < args.min_uptime:
        print(
            f"node{i} exited ({how}) within {args.min_uptime:g} s of starting; "
            f"leaving it stopped, see {log}",
            file=sys.stderr,
            flush=True,
        )
        return
    print(f"node{i} exited ({how}); restarting it", file=sys.stderr, flush=True)
    time.sleep(RESTART_DELAY_S)
    seeds = [f"127.0.0.1:{ports[j]}" for j in sorted(procs)]
    try:
        procs[i], ready = start_node(i, args.base_dir, ports[i], seeds[0] if seeds else None)
    except SystemExit as exc:
        print(f"node{i}: {exc}", file=sys.stderr, flush=True)
        return
    started[i] = time.monotonic()
    print(f"node{i}: {ready}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
