"""Real `swarmnode` processes for tests: start one, wait until it serves, stop or SIGKILL it.

A node is the installed console script run exactly as a user runs it, on its
own data directory, with an ephemeral gossip port and the `local` timer
profile. It counts as started when it prints its ready line on stdout; its
log (stderr) goes to a file beside the data directory, so a failing test can
show what the node said. Unix socket paths must fit in 107 bytes, hence the
short directories under /tmp rather than pytest's deep tmp_path.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from swarmnode.client import Client

READY_RE = re.compile(r"^swarmnode ready: node (\S+) gossip (\S+) socket (\S+)$")
START_TIMEOUT = 60.0
"""Seconds a node may take to print its ready line; generous for a loaded machine."""
STOP_TIMEOUT = 30.0


def swarmnode_command() -> list[str]:
    """The console script installed beside this interpreter, as a user would run it."""
    script = Path(sys.executable).parent / "swarmnode"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "swarmnode.cli"]


def short_dir(prefix: str = "sn-") -> Path:
    """A fresh private directory with a short path (socket paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any SWARMNODE_* setting of the caller, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")}
    env.update(extra)
    return env


PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (Linux prctl), so an
    interrupted test run never leaves nodes behind. Only a C call: the child of a threaded
    process must not take locks."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class NodeStartError(RuntimeError):
    """The node exited (or never got ready) instead of serving."""


@dataclass
class NodeProcess:
    """One `swarmnode run` process."""

    proc: subprocess.Popen[bytes]
    data_dir: Path | None
    log_path: Path
    socket: Path | None = None
    node_id: str | None = None
    gossip: str | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _stdout: list[str] = field(default_factory=list)

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self._stdout.append(line)
            m = READY_RE.match(line)
            if m and not self._ready.is_set():
                self.node_id, self.gossip = m.group(1), m.group(2)
                self.socket = Path(m.group(3))
                self._ready.set()
        self._ready.set()  # stdout closed: the process is gone; wake any waiter

    def wait_ready(self, timeout: float = START_TIMEOUT) -> NodeProcess:
        self._ready.wait(timeout)
        if self.socket is None:
            try:
                rc = self.proc.wait(5)  # stdout closes just before the exit is reaped
            except subprocess.TimeoutExpired:
                rc = None
            state = f"exited with {rc}" if rc is not None else f"not ready after {timeout:g}s"
            stdout = "\n".join(self._stdout)
            raise NodeStartError(f"swarmnode {state}; stdout:\n{stdout}\nlog:\n{self.log()}")
        return self

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def client(self, timeout: float | None = 60.0) -> Client:
        assert self.socket is not None, "node not ready"
        return Client(self.socket, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or the OOM killer."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM and wait for the graceful exit; returns the exit status."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def close(self) -> None:
        """Leave nothing running (test teardown)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.stop()
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def spawn_node(
    data_dir: Path | None,
    *args: str,
    socket_path: Path | None = None,
    env: dict[str, str] | None = None,
    profile: str | None = "local",
    bind: str | None = "127.0.0.1:0",
    log_path: Path | None = None,
) -> NodeProcess:
    """Start `swarmnode run` without waiting; `wait_ready()` or `wait_exit()` next.

    Flags left at None are not passed, so `spawn_node(None, profile=None,
    bind=None, env=...)` runs the node on its embedded defaults.
    """
    cmd = [*swarmnode_command(), "run"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if socket_path is not None:
        cmd += ["--socket", str(socket_path)]
    if profile is not None:
        cmd += ["--profile", profile]
    if bind is not None:
        cmd += ["--bind", bind]
    cmd += list(args)
    if log_path is None:
        base = data_dir.parent if data_dir is not None else short_dir()
        log_path = Path(tempfile.mkstemp(prefix="node-", suffix=".log", dir=base)[1])
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env if env is not None else clean_env(),
            preexec_fn=_die_with_parent if _LIBC is not None else None,
        )
    node = NodeProcess(proc, data_dir, log_path)
    threading.Thread(target=node._pump_stdout, daemon=True).start()
    return node


def start_node(data_dir: Path, *args: str, **kwargs: Any) -> NodeProcess:
    """Start a node and wait until it serves; raises `NodeStartError` with its log if not."""
    node = spawn_node(data_dir, *args, **kwargs)
    try:
        return node.wait_ready()
    except BaseException:
        node.close()
        raise


def run_cli(
    *args: str,
    socket_path: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run one `swarmnode` client command, as a shell script would."""
    argv = list(args)
    if socket_path is not None:
        at = argv.index("--") if "--" in argv else len(argv)
        argv[at:at] = ["--socket", str(socket_path)]
    cmd = [*swarmnode_command(), *argv]
    return subprocess.run(
        cmd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
        check=False,
    )


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class RawSocket:
    """Bytes to and from the node's socket, to send what no well-behaved client would."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(os.fspath(path))
        self._buffer = b""

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_value(self, value: Any) -> None:
        self.send_bytes(frame_bytes(msgpack.packb(value, use_bin_type=True)))

    def request(self, request_id: int, op: str, **args: Any) -> None:
        self.send_value({"id": request_id, "op": op, "args": args})

    def reply(self) -> dict[str, Any]:
        """The next frame from the node; AssertionError if it closes the connection instead."""
        frame = self._next_frame()
        assert frame is not None, "the node closed the connection"
        return frame

    def call(self, request_id: int, op: str, **args: Any) -> dict[str, Any]:
        self.request(request_id, op, **args)
        return self.reply()

    def closed_by_node(self) -> bool:
        """True if the node closes the connection without sending anything more."""
        return self._next_frame() is None

    def frames_until_closed(self) -> list[dict[str, Any]]:
        frames = []
        while (frame := self._next_frame()) is not None:
            frames.append(frame)
        return frames

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()

    def _next_frame(self) -> dict[str, Any] | None:
        while True:
            if len(self._buffer) >= 4:
                (length,) = struct.unpack(">I", self._buffer[:4])
                if len(self._buffer) >= 4 + length:
                    payload = self._buffer[4 : 4 + length]
                    self._buffer = self._buffer[4 + length :]
                    return msgpack.unpackb(payload, raw=False)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                assert not self._buffer, f"node closed mid-frame: {self._buffer[:40]!r}"
                return None
            self._buffer += data

    def __enter__(self) -> RawSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def frame_bytes(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload
