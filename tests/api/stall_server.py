"""An `ApiServer` alone in a process, so a test can watch its memory from outside.

    python tests/api/stall_server.py SOCKET MAX_BUFFERED_BYTES FRAME_TIMEOUT

Serves `echo` (returns its arguments) and `stats` (the server's `api` section) on
SOCKET with the default 16 MiB frame limit, prints `ready` once listening, and
runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from swarmnode.api.limits import ApiLimits
from swarmnode.api.server import ApiServer, RequestContext


async def dispatch(op: str, args: dict[str, Any], ctx: RequestContext) -> Any:
    if op == "stats":
        return server.stats()
    return args


async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    socket, budget, timeout = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    limits = ApiLimits(max_buffered_bytes=budget, frame_timeout=timeout)
    server = ApiServer(socket, dispatch, limits)
    asyncio.run(main())
