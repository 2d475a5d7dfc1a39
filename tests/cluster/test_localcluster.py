"""`./dev cluster`: a node killed under the local cluster comes back and catches up."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodeproc import clean_env, remove_dir, short_dir

from swarmnode.client import Client

from .procs import WAIT, wait_for

LINE_WAIT = 60.0


def free_port_pair() -> int:
    """A port p with p and p + 1 free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
        probe.close()
        if base >= 65535:
            continue
        held = []
        try:
            for port in (base, base + 1):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    held.append(s)
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base
    raise RuntimeError("no free pair of ports")


class Output:
    """The cluster's merged stdout and stderr, line by line, with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, needle: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=LINE_WAIT)
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r}; saw {self.seen}") from None
            self.seen.append(line)
            if needle in line:
                return line


def node_pid(base: Path, index: int) -> int:
    """The pid of `swarmnode run` on base/node<index>, from /proc."""
    marker = f"{base}/node{index}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"run" in cmdline and marker in cmdline:
            return int(entry.name)
    raise AssertionError(f"no process serves {marker!r}")


@pytest.fixture
def base() -> Iterator[Path]:
    path = short_dir("snl-")
    yield path
    remove_dir(path)


def start(base: Path, *flags: str) -> tuple[subprocess.Popen[str], Output]:
    cmd = [sys.executable, "-m", "swarmnode.localcluster", "--nodes", "2"]
    cmd += ["--base-dir", str(base), "--base-port", str(free_port_pair()), *flags]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    return proc, Output(proc)


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_a_killed_node_restarts_rejoins_and_catches_up(base: Path) -> None:
    proc, out = start(base, "--min-uptime", "0")
    try:
        out.until("2 nodes running")
        with Client(base / "node1" / "run" / "swarmnode.sock", timeout=WAIT) as c:
            c.put("tasks", "before-kill", "v1")
        os.kill(node_pid(base, 2), signal.SIGKILL)
        assert "signal 9" in out.until("node2 exited")
        out.until("node2: swarmnode ready")
        with Client(base / "node1" / "run" / "swarmnode.sock", timeout=WAIT) as c:
            c.put("tasks", "after-restart", "v2")
        with Client(base / "node2" / "run" / "swarmnode.sock", timeout=WAIT) as c2:

            def both() -> list[object]:
                return [c2.get("tasks", k) for k in ("before-kill", "after-restart")]

            got = wait_for(both, "node2 to hold both writes after its restart")
            assert [g["value"] for g in got] == ["v1", "v2"]
    finally:
        assert stop(proc) == 0
    out.until("stopped")


def test_with_no_restart_a_killed_node_stays_down(base: Path) -> None:
    proc, out = start(base, "--no-restart")
    try:
        out.until("2 nodes running")
        os.kill(node_pid(base, 2), signal.SIGKILL)
        assert "leaving it stopped" in out.until("node2 exited")
        os.kill(node_pid(base, 1), signal.SIGKILL)
        out.until("node1 exited")
        out.until("no node left running")
        assert proc.wait(30) == 1
    finally:
        if proc.poll() is None:
            stop(proc)
