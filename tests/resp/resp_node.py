"""A real node with the RESP front end attached, as one process (`python resp_node.py ...`).

Until the runtime starts the RESP server itself (`swarmnode run --resp-socket PATH
--resp-bind HOST:PORT`), this runs the runtime's own `NodeProcess` and attaches a
`RespServer` to the dispatch its API server uses, so every command goes through
exactly what a msgpack client's request goes through. It prints the node's usual
ready line, then `swarmnode resp ready: socket PATH tcp HOST:PORT`. SIGTERM or
SIGINT closes the RESP server first, then the node.

    python tests/resp/resp_node.py --data-dir D --socket S --resp-socket R \\
        [--resp-bind 127.0.0.1:0] [--profile local] [--bind 127.0.0.1:0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from swarmnode.config import load_config
from swarmnode.logs import setup_logging
from swarmnode.resp import RespServer
from swarmnode.runtime.real import NodeProcess


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--socket", type=Path)
    p.add_argument("--resp-socket", type=Path)
    p.add_argument("--resp-bind", help="HOST:PORT for RESP over TCP (loopback)")
    p.add_argument("--bind", default="127.0.0.1:0", help="gossip address")
    p.add_argument("--profile", default="local", choices=["lan", "local"])
    p.add_argument("--log-level", default="info")
    p.add_argument(
        "--resp-token",
        help="require AUTH with this password (a stand-in for the agent-token hook)",
    )
    return p.parse_args()


async def serve(args: argparse.Namespace) -> None:
    overrides = {
        "data_dir": args.data_dir,
        "socket": args.socket,
        "bind": args.bind,
        "log_level": args.log_level,
    }
    cfg = load_config(None, profile=args.profile, overrides=overrides)
    setup_logging(cfg.log_level, cfg.log_format)
    process = NodeProcess(cfg)
    runner = asyncio.create_task(process.run())
    ready = asyncio.create_task(process.ready.wait())
    await asyncio.wait([runner, ready], return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        ready.cancel()
        await runner
        raise SystemExit("the node stopped before it was ready")
    tcp = None
    if args.resp_bind:
        host, _, port = args.resp_bind.rpartition(":")
        tcp = (host, int(port))
    assert process.server is not None
    authenticate = None
    if args.resp_token:
        token = args.resp_token

        async def authenticate(ctx: object, offered: str) -> str | None:
            return "tester" if offered == token else None

    resp = RespServer(
        process.server._dispatch,
        socket_path=args.resp_socket,
        tcp=tcp,
        authenticate=authenticate,
        admit=(lambda session: False) if authenticate is not None else None,
    )
    await resp.start()
    address = resp.tcp_address
    print(
        f"swarmnode resp ready: socket {args.resp_socket or '-'} "
        f"tcp {f'{address[0]}:{address[1]}' if address else '-'}",
        flush=True,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    done = asyncio.create_task(stopping.wait())
    await asyncio.wait([runner, done], return_when=asyncio.FIRST_COMPLETED)
    await resp.close()
    process.stop()
    done.cancel()
    await runner


def main() -> int:
    import uvloop

    uvloop.run(serve(parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
