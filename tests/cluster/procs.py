"""Clusters of real `swarmnode run` processes on loopback, for the multi-process tests.

Every node binds an address of its own in 127.0.0.0/8 (all of it is loopback
on Linux), so `members` and the logs say at a glance which node is which, and
a restarted node comes back on the same address and port, as a restarted
service does. Each node may get a cluster key file of its own (a copy of one
key), so a test can cut some nodes off from the others by giving them a new
key and reloading it (SIGHUP): a real partition in both directions, where
each side keeps running and taking writes.

Nothing here waits a fixed time: `wait_for` polls a condition until it holds,
with a timeout generous enough for a loaded machine, and reports the last
value it saw when it gives up.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nodeproc import NodeProcess, spawn_node, start_node

from swarmnode.client import Client
from swarmnode.errors import NotFound
from swarmnode.transport import generate_key_file

T = TypeVar("T")

WAIT = 60.0
"""Seconds any convergence may take before a test fails; generous for 2 busy cores."""
POLL = 0.05

_hosts = itertools.count(random.randrange(0, 200) * 250)


def loopback_hosts(count: int) -> list[str]:
    """`count` loopback addresses no other cluster of this test run uses."""
    out = []
    for _ in range(count):
        n = next(_hosts)
        out.append(f"127.0.{1 + (n // 250) % 250}.{1 + n % 250}")
    return out


def wait_for(check: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    """Poll `check` until it returns something truthy; AssertionError naming `what` if not.

    Exceptions from `check` count as "not yet" (a node may be restarting), and
    the last value or exception is shown when the wait fails.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
        except Exception as exc:
            value, last = None, exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(POLL)


def copy_key(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    os.chmod(target, 0o600)
    return target


@dataclass
class Cluster:
    """N node processes joined into one cluster; `close()` leaves nothing running."""

    base: Path
    nodes: list[NodeProcess] = field(default_factory=list)
    key_files: list[Path | None] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    profile: str = "local"
    master_key: Path | None = None
    """The cluster key every node got a copy of (keyed clusters only)."""
    _clients: dict[int, Client] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        base: Path,
        size: int,
        *,
        keyed: bool = False,
        args: Sequence[str] = (),
        profile: str = "local",
        config: str | None = None,
    ) -> Cluster:
        """Start `size` nodes, each joined to the first, and wait until all see all alive.

        `config` is TOML written to a file every node reads (`--config`).
        """
        base.mkdir(parents=True, exist_ok=True)
        cluster = cls(base, args=list(args), profile=profile)
        if config is not None:
            path = base / "node.toml"
            path.write_text(config)
            cluster.args += ["--config", str(path)]
        master = cluster.master_key = base / "cluster.key" if keyed else None
        if master is not None:
            generate_key_file(master)
        hosts = loopback_hosts(size)
        try:
            for i in range(size):
                key = copy_key(master, base / f"node{i}.key") if master is not None else None
                cluster.key_files.append(key)
            cluster.nodes.append(cluster._start(0, f"{hosts[0]}:0", seed=None))
            seed = cluster.nodes[0].gossip
            spawned = [cluster._spawn(i, f"{hosts[i]}:0", seed=seed) for i in range(1, size)]
            for node in spawned:
                cluster.nodes.append(node.wait_ready())
            cluster.wait_all_alive()
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _flags(self, i: int, seed: str | None) -> list[str]:
        flags = list(self.args)
        if self.key_files[i] is not None:
            flags += ["--cluster-key-file", str(self.key_files[i])]
        if seed is not None:
            flags += ["--join", seed]
        return flags

    def _spawn(self, i: int, bind: str, seed: str | None) -> NodeProcess:
        return spawn_node(
            self.base / f"node{i}", *self._flags(i, seed), profile=self.profile, bind=bind
        )

    def _start(self, i: int, bind: str, seed: str | None) -> NodeProcess:
        return start_node(
            self.base / f"node{i}", *self._flags(i, seed), profile=self.profile, bind=bind
        )

    # --- clients and reads ----------------------------------------------------

    def client(self, i: int) -> Client:
        """A connected client of node i, kept for the cluster's life (reconnects by itself)."""
        if i not in self._clients:
            self._clients[i] = self.nodes[i].client(timeout=WAIT)
        return self._clients[i]

    def __len__(self) -> int:
        return len(self.nodes)

    def indexes(self, exclude: Iterable[int] = ()) -> list[int]:
        skip = set(exclude)
        return [i for i in range(len(self.nodes)) if i not in skip]

    def on_every_node(
        self, read: Callable[[Client], T], nodes: Iterable[int] | None = None
    ) -> list[T]:
        return [read(self.client(i)) for i in (self.indexes() if nodes is None else nodes)]

    def wait_everywhere(
        self,
        read: Callable[[Client], T],
        expect: Callable[[T], bool],
        what: str,
        nodes: Iterable[int] | None = None,
        timeout: float = WAIT,
    ) -> list[T]:
        """Poll until `expect(read(node))` holds on every node; returns what each node read."""
        chosen = list(self.indexes() if nodes is None else nodes)

        def check() -> list[T] | None:
            seen = self.on_every_node(read, chosen)
            return seen if all(expect(v) for v in seen) else None

        try:
            return wait_for(check, what, timeout)
        except AssertionError as exc:
            seen = []
            for i in chosen:
                try:
                    seen.append((i, read(self.client(i))))
                except Exception as err:
                    seen.append((i, err))
            raise AssertionError(f"{exc}\nper node: {seen}") from None

    def members(self, i: int) -> dict[str, dict[str, Any]]:
        """Node i's view of the cluster: node id -> its member record."""
        return {m["node_id"]: m for m in self.client(i).members()["members"]}

    def wait_all_alive(self, nodes: Iterable[int] | None = None, timeout: float = WAIT) -> None:
        """Until each chosen node sees every node of the cluster alive."""
        ids = {n.node_id for n in self.nodes}
        self.wait_everywhere(
            lambda c: {m["node_id"]: m["state"] for m in c.members()["members"]},
            lambda view: set(view) >= ids and all(view[n] == "alive" for n in ids),
            "every node to see every node alive",
            nodes,
            timeout,
        )

    def wait_state(self, target: int, state: str, observers: Iterable[int]) -> None:
        """Until every observer sees node `target` in `state` (alive, suspect, dead, left)."""
        node_id = self.nodes[target].node_id
        self.wait_everywhere(
            lambda c: {m["node_id"]: m["state"] for m in c.members()["members"]}.get(node_id),
            lambda seen: seen == state,
            f"node {target} to be {state} on nodes {list(observers)}",
            observers,
        )

    def stats(self, i: int) -> dict[str, Any]:
        return self.client(i).stats()

    # --- faults -----------------------------------------------------------------

    def _forget_client(self, i: int) -> None:
        client = self._clients.pop(i, None)
        if client is not None:
            client.close()

    def stop(self, i: int) -> None:
        """SIGTERM: a graceful leave."""
        self._forget_client(i)
        self.nodes[i].stop()

    def kill(self, i: int) -> None:
        """SIGKILL: a crash."""
        self._forget_client(i)
        self.nodes[i].kill()

    def add_node(self) -> NodeProcess:
        """Start one more node, joined to the first, on a fresh data directory."""
        i = len(self.nodes)
        key = self.master_key
        self.key_files.append(copy_key(key, self.base / f"node{i}.key") if key else None)
        self.nodes.append(self._start(i, f"{loopback_hosts(1)[0]}:0", seed=self.nodes[0].gossip))
        return self.nodes[i]

    def restart(self, i: int) -> NodeProcess:
        """Start node i again on its data and its address, joined to the first other node."""
        self._forget_client(i)
        old = self.nodes[i]
        if old.alive:
            old.close()
        seed = self.nodes[0 if i else 1].gossip
        self.nodes[i] = self._start(i, old.gossip or "", seed=seed)
        return self.nodes[i]

    def pause(self, i: int) -> None:
        """SIGSTOP: the process stops answering anything, like a hung or cut-off host."""
        self.nodes[i].proc.send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.nodes[i].proc.send_signal(signal.SIGCONT)

    def rekey(self, nodes: Iterable[int], key_source: Path) -> None:
        """Give `nodes` the key in `key_source` and make them reload it (SIGHUP)."""
        for i in nodes:
            path = self.key_files[i]
            assert path is not None, "rekey needs a keyed cluster"
            tmp = path.with_suffix(".new")
            copy_key(key_source, tmp)
            tmp.replace(path)
            self.nodes[i].proc.send_signal(signal.SIGHUP)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for node in self.nodes:
            if node.alive:
                node.proc.send_signal(signal.SIGCONT)
        for node in self.nodes:
            node.close()


def read_value(ns: str, key: str) -> Callable[[Client], Any]:
    """A reader for `wait_everywhere`: the register's value, or NotFound as a value."""

    def read(client: Client) -> Any:
        try:
            return client.get(ns, key)["value"]
        except NotFound:
            return NotFound

    return read
