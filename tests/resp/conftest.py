"""One real node serving RESP for a test module, on a Unix socket and a loopback TCP port.

Everything about starting it lives here and in `resp_node.py`: until the runtime
starts the RESP server itself, the node is `resp_node.py` (the runtime's
`NodeProcess` with a `RespServer` attached); once `swarmnode run --resp-socket
PATH --resp-bind HOST:PORT` exists, `start_resp_node` becomes a `spawn_node`
call with those flags and nothing else changes.

Tests share the module's node, so each uses keys of its own (`unique`).
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nodeproc import START_TIMEOUT, STOP_TIMEOUT, _die_with_parent, clean_env, remove_dir, short_dir

LAUNCHER = Path(__file__).with_name("resp_node.py")
READY_RE = re.compile(r"^swarmnode resp ready: socket (\S+) tcp (\S+)$")


@dataclass
class RespNode:
    proc: subprocess.Popen[bytes]
    base: Path
    socket: Path
    host: str = ""
    port: int = 0
    _ready: threading.Event = field(default_factory=threading.Event)
    _stdout: list[str] = field(default_factory=list)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self._stdout.append(line)
            m = READY_RE.match(line)
            if m:
                host, _, port = m.group(2).rpartition(":")
                self.host, self.port = host, int(port)
                self._ready.set()
        self._ready.set()

    def log(self) -> str:
        path = self.base / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_resp_node(base: Path, *flags: str) -> RespNode:
    """A node with RESP on `<base>/resp.sock` and an ephemeral loopback port, once serving."""
    socket = base / "run" / "resp.sock"
    cmd = [
        sys.executable,
        str(LAUNCHER),
        "--data-dir",
        str(base / "data"),
        "--socket",
        str(base / "run" / "api.sock"),
        "--resp-socket",
        str(socket),
        "--resp-bind",
        "127.0.0.1:0",
        *flags,
    ]
    with open(base / "node.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=clean_env(),
            preexec_fn=_die_with_parent,
        )
    node = RespNode(proc, base, socket)
    threading.Thread(target=node._pump, daemon=True).start()
    node._ready.wait(START_TIMEOUT)
    if not node.port:
        node.close()
        raise RuntimeError(
            "the RESP node did not get ready; stdout:\n"
            + "\n".join(node._stdout)
            + "\nlog:\n"
            + node.log()
        )
    return node


@pytest.fixture(scope="module")
def resp_node() -> Iterator[RespNode]:
    base = short_dir("sr-")
    node = start_resp_node(base)
    yield node
    node.close()
    remove_dir(base)


_counter = itertools.count()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Key names no other test of the module uses: `unique("k")` -> `k-<n>`."""
    n = next(_counter)
    return lambda name: f"{name}-{n}"


def redis_cli_path() -> str | None:
    return shutil.which("redis-cli")
