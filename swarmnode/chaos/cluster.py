"""Real `swarmnode run` processes for the chaos harness: start, kill -9, pause, rekey, fill disk.

Each node is the installed console script run exactly as an operator runs
it, on its own data directory, with a cluster key file of its own (a copy
of the cluster's key, so a rotation is done file by file and SIGHUP by
SIGHUP as docs/OPERATIONS.md says), joined to every other node's address so
that a restarted node finds whoever is up. A node counts as started when it
prints its ready line; its log goes to `n<i>.log` beside its data directory.

Faults act on the real thing: SIGKILL and SIGSTOP on the process, the wall
clock the process reads (see `clock.py`), and a disk that fills up: the
store directory of the node chosen for disk faults is a small tmpfs mounted
before the node starts, and filling it is writing a ballast file until the
kernel says ENOSPC.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import errno
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from swarmnode.chaos.clock import ENV_FILE, NodeClock
from swarmnode.chaos.network import Network
from swarmnode.client import Client

log = logging.getLogger("swarmnode.chaos")

READY_RE = re.compile(r"^swarmnode ready: node (\S+) gossip (\S+) socket (\S+)$")
PORT = 7117
_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the harness dies, so no node outlives it."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def swarmnode_command() -> list[str]:
    script = Path(sys.executable).parent / "swarmnode"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "swarmnode.cli"]


class NodeStartError(RuntimeError):
    """A node exited or did not print its ready line in time."""


@dataclass
class NodeHandle:
    index: int
    data_dir: Path
    key_file: Path
    log_path: Path
    clock: NodeClock | None
    proc: subprocess.Popen[bytes] | None = None
    node_id: str | None = None
    socket: Path | None = None
    paused: bool = False
    tmpfs: Path | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive and self.proc is not None else None

    def rss_bytes(self) -> int | None:
        """Resident memory of the process, from /proc (None when it is not running)."""
        pid = self.pid
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def open_files(self) -> int | None:
        pid = self.pid
        if pid is None:
            return None
        try:
            return len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return None


class ChaosCluster:
    """N node processes on a `Network`; `close()` leaves nothing running or mounted."""

    def __init__(
        self,
        base: Path,
        network: Network,
        *,
        profile: str = "local",
        config_toml: str = "",
        clock_shim: Path | None = None,
        disk_nodes: tuple[int, ...] = (),
        disk_bytes: int = 64 << 20,
        start_timeout: float = 90.0,
    ) -> None:
        self.base = base
        self.network = network
        self.profile = profile
        self.clock_shim = clock_shim
        self.start_timeout = start_timeout
        self.disk_bytes = disk_bytes
        base.mkdir(parents=True, exist_ok=True)
        self.config_path = base / "node.toml"
        self.config_path.write_text(config_toml)
        self.master_key = base / "cluster.key"
        self.nodes: list[NodeHandle] = []
        self._clients: dict[int, Client] = {}
        for i in range(network.size):
            clock = NodeClock(base / f"n{i}.clock") if clock_shim is not None else None
            handle = NodeHandle(i, base / f"n{i}", base / f"n{i}.key", base / f"n{i}.log", clock)
            self.nodes.append(handle)
        self._disk_nodes = disk_nodes
        # PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so
        # every node is forked by this one thread, which lives as long as the cluster
        # (a node restarted by the nemesis thread would die with it otherwise).
        self._spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")

    def __len__(self) -> int:
        return len(self.nodes)

    # --- life cycle -----------------------------------------------------------

    def start(self) -> ChaosCluster:
        from swarmnode.transport import generate_key_file

        generate_key_file(self.master_key)
        for node in self.nodes:
            shutil.copyfile(self.master_key, node.key_file)
            os.chmod(node.key_file, 0o600)
            node.data_dir.mkdir(parents=True, exist_ok=True)
            if node.index in self._disk_nodes:
                self._mount_tmpfs(node)
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:
            self._wait_ready(node)
        return self

    def address(self, i: int) -> str:
        return f"{self.network.host(i)}:{PORT}"

    def _spawn(self, node: NodeHandle) -> None:
        seeds = [self.address(j) for j in range(len(self.nodes)) if j != node.index]
        argv = [
            *swarmnode_command(),
            "run",
            "--data-dir",
            str(node.data_dir),
            "--bind",
            self.address(node.index),
            "--cluster-key-file",
            str(node.key_file),
            "--profile",
            self.profile,
            "--config",
            str(self.config_path),
        ]
        for seed in seeds:
            argv += ["--join", seed]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMNODE_")}
        if node.clock is not None and self.clock_shim is not None:
            env["LD_PRELOAD"] = str(self.clock_shim)
            env[ENV_FILE] = str(node.clock.path)
        node._ready = threading.Event()

        def fork() -> subprocess.Popen[bytes]:
            with open(node.log_path, "ab") as logf:
                return subprocess.Popen(
                    self.network.wrap(node.index, argv),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=logf,
                    env=env,
                    preexec_fn=_die_with_parent if _LIBC is not None else None,
                )

        node.proc = self._spawner.submit(fork).result()
        node.paused = False
        threading.Thread(target=self._pump, args=(node, node.proc), daemon=True).start()

    @staticmethod
    def _pump(node: NodeHandle, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            m = READY_RE.match(raw.decode(errors="replace").strip())
            if m and proc is node.proc:
                node.node_id, node.socket = m.group(1), Path(m.group(3))
                node._ready.set()
        if proc is node.proc:
            node._ready.set()

    def _wait_ready(self, node: NodeHandle) -> None:
        node._ready.wait(self.start_timeout)
        if not node.alive or node.socket is None or not node._ready.is_set():
            tail = node.log_path.read_text(errors="replace")[-3000:]
            raise NodeStartError(f"node {node.index} did not start; log tail:\n{tail}")

    def kill(self, i: int) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or the OOM killer."""
        node = self.nodes[i]
        self._forget_client(i)
        if node.alive and node.proc is not None:
            node.proc.send_signal(signal.SIGKILL)
        if node.proc is not None:
            node.proc.wait(30)
        node.paused = False

    def restart(self, i: int) -> None:
        """Start node i again on its data directory and address; waits until it serves."""
        node = self.nodes[i]
        if node.alive:
            self.kill(i)
        self._spawn(node)
        self._wait_ready(node)

    def pause(self, i: int) -> None:
        node = self.nodes[i]
        if node.alive and node.proc is not None:
            node.proc.send_signal(signal.SIGSTOP)
            node.paused = True

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if node.alive and node.proc is not None:
            node.proc.send_signal(signal.SIGCONT)
        node.paused = False

    def sighup(self, i: int) -> None:
        node = self.nodes[i]
        if node.alive and node.proc is not None:
            node.proc.send_signal(signal.SIGHUP)

    def write_key_file(self, i: int, keys: list[str]) -> None:
        """Replace node i's key file atomically with these base64 keys (first one seals)."""
        path = self.nodes[i].key_file
        tmp = path.with_suffix(".new")
        tmp.write_text("".join(k + "\n" for k in keys))
        os.chmod(tmp, 0o600)
        tmp.replace(path)

    # --- disk -------------------------------------------------------------------

    def _mount_tmpfs(self, node: NodeHandle) -> None:
        store = node.data_dir / "store"
        store.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={self.disk_bytes},mode=0700",
                "tmpfs",
                str(store),
            ],
            check=True,
            capture_output=True,
        )
        node.tmpfs = store

    def fill_disk(self, i: int) -> int:
        """Fill node i's store filesystem to the last byte; returns the ballast size."""
        node = self.nodes[i]
        assert node.tmpfs is not None, f"node {i} has no tmpfs store"
        ballast = node.tmpfs / "ballast"
        written = 0
        chunk = b"\0" * (1 << 20)
        with open(ballast, "ab", buffering=0) as f:
            for size in (1 << 20, 4096, 1):
                piece = chunk[:size]
                while True:
                    try:
                        written += f.write(piece)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        return written

    def free_disk(self, i: int) -> None:
        node = self.nodes[i]
        if node.tmpfs is not None:
            with contextlib.suppress(FileNotFoundError):
                (node.tmpfs / "ballast").unlink()

    # --- clients -----------------------------------------------------------------

    def client(self, i: int, timeout: float = 10.0) -> Client:
        """A client of node i kept for the cluster's life (it reconnects by itself)."""
        if i not in self._clients:
            node = self.nodes[i]
            assert node.socket is not None, f"node {i} never started"
            self._clients[i] = Client(node.socket, timeout=timeout)
        return self._clients[i]

    def _forget_client(self, i: int) -> None:
        client = self._clients.pop(i, None)
        if client is not None:
            client.close()

    def node_ids(self) -> dict[str, int]:
        return {n.node_id: n.index for n in self.nodes if n.node_id}

    def close(self) -> None:
        for client in list(self._clients.values()):
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        for node in self.nodes:
            if node.alive and node.proc is not None:
                node.proc.send_signal(signal.SIGCONT)
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(30)
            if node.proc.stdout is not None:
                node.proc.stdout.close()
        self._spawner.shutdown(wait=True)
        for node in self.nodes:
            if node.tmpfs is not None:
                subprocess.run(["umount", "-l", str(node.tmpfs)], capture_output=True, check=False)
                node.tmpfs = None


def sweep_stale_mounts() -> list[str]:
    """Unmount the tmpfs stores (and remove the directories) of harnesses that are gone.

    A run's directory is /tmp/snch-*/ with the harness's pid in `harness.pid`.
    """
    removed: list[str] = []
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return removed
    for line in mounts:
        parts = line.split()
        if len(parts) < 3 or parts[2] != "tmpfs" or not parts[1].startswith("/tmp/snch-"):
            continue
        base = Path(parts[1]).parents[1]
        try:
            pid = int((base / "harness.pid").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            subprocess.run(["umount", "-l", parts[1]], capture_output=True, check=False)
            shutil.rmtree(base, ignore_errors=True)
            removed.append(parts[1])
    return removed
