"""A local cluster of real node processes on one host, for trying swarmnode out.

`./dev cluster` (or `python -m swarmnode.localcluster`) starts three nodes on
127.0.0.1 with their own data directories, each joined to the first, prints how
to reach each one, and stops them all on Ctrl-C. The nodes are ordinary
`swarmnode run` processes with the `local` timer profile.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from swarmnode.paths import default_data_dir


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
    args = p.parse_args(argv)
    args.base_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    procs = []
    seed = None
    try:
        for i in range(1, args.nodes + 1):
            port = args.base_port + i - 1
            proc, ready = start_node(i, args.base_dir, port, seed)
            procs.append(proc)
            seed = seed or f"127.0.0.1:{port}"
            sock = ready.rsplit(" socket ", 1)[-1]
            print(f"node{i}: {ready}")
            print(f"        export SWARMNODE_SOCKET={sock}")
        print(f"{args.nodes} nodes running; logs in {args.base_dir}.", flush=True)
        print("Ctrl-C stops them.", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        print("a node exited; stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
