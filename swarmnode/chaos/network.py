"""Where the nodes live: a network namespace each on one Linux bridge, or loopback addresses.

As root, every node gets a namespace `<prefix>n<i>` with one veth whose other
end is enslaved to the bridge `<prefix>br`, and an address in a private /24
that exists only on that bridge (the bridge itself has no address, so
nothing is routed off it). Partitions are nftables rules inside the
namespaces: each node drops what arrives from the nodes it must not hear, so
a cut can be one-way (A hears B, B does not hear A) or any graph of them.
Dropping at the receiver cuts TCP as well, since the handshake needs both
directions.

Without root there are no namespaces: nodes bind addresses of their own in
127.0.0.0/8 and the harness offers only the faults that need no privilege.

Every namespace, veth and bridge made here is removed by `close()`; names
carry the harness's pid so `sweep_stale()` can remove what a killed harness
left behind without touching anything of a live one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
from collections.abc import Iterable, Mapping

log = logging.getLogger("swarmnode.chaos.network")

PREFIX = "snch"
_NAME = re.compile(rf"^{PREFIX}(\d+)")


class NetworkError(RuntimeError):
    """A namespace, link or rule could not be set up."""


def have_root() -> bool:
    return os.geteuid() == 0


def _run(*cmd: str, input_text: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        cmd, input=input_text, capture_output=True, text=True, check=False, timeout=30
    )
    if check and done.returncode != 0:
        raise NetworkError(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


class Network:
    """Addresses for the nodes, a way to run a command there, and reachability control."""

    namespaced = False

    def __init__(self, size: int) -> None:
        self.size = size

    def host(self, i: int) -> str:
        raise NotImplementedError

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        """The command line that runs `argv` on node i's host."""
        return argv

    def set_grudges(self, grudges: Mapping[int, Iterable[int]]) -> None:
        """Node i drops everything from the nodes in grudges[i]; the others hear everyone."""
        raise NetworkError("partitions need network namespaces (run as root)")

    def heal(self) -> None:
        """Everyone hears everyone again."""

    def close(self) -> None:
        """Remove everything this network made."""


class LoopbackNetwork(Network):
    """No isolation: one loopback address per node, no partitions."""

    def __init__(self, size: int, base: int = 0) -> None:
        super().__init__(size)
        self._base = base

    def host(self, i: int) -> str:
        n = self._base + i
        return f"127.{70 + (n // 250) % 50}.{(n // 250) % 250}.{1 + n % 250}"


class BridgeNetwork(Network):
    """Network namespaces on a bridge, with nftables for partitions (needs root)."""

    namespaced = True

    def __init__(self, size: int, subnet: int | None = None) -> None:
        super().__init__(size)
        self.tag = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.tag}br"[:15]
        self.subnet = subnet if subnet is not None else 100 + os.getpid() % 100
        self._namespaces: list[str] = []
        self._links: list[str] = []
        self._grudges: dict[int, set[int]] = {}

    def namespace(self, i: int) -> str:
        return f"{self.tag}n{i}"

    def host(self, i: int) -> str:
        return f"10.{self.subnet}.0.{10 + i}"

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(i), *argv]

    def create(self) -> BridgeNetwork:
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            self._links.append(self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for i in range(self.size):
                self._add_node(i)
        except BaseException:
            self.close()
            raise
        return self

    def _add_node(self, i: int) -> None:
        ns = self.namespace(i)
        outer = f"{self.tag}v{i}"[:15]
        _run("ip", "netns", "add", ns)
        self._namespaces.append(ns)
        _run("ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._links.append(outer)
        _run("ip", "link", "set", outer, "master", self.bridge)
        _run("ip", "link", "set", outer, "up")
        inside = ["ip", "netns", "exec", ns]
        _run(*inside, "ip", "addr", "add", f"{self.host(i)}/24", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(
            *inside,
            "nft",
            "-f",
            "-",
            input_text=(
                "table inet chaos {\n"
                "  set cut { type ipv4_addr; }\n"
                "  chain input { type filter hook input priority 0; policy accept;\n"
                "    ip saddr @cut drop; }\n"
                "}\n"
            ),
        )

    def set_grudges(self, grudges: Mapping[int, Iterable[int]]) -> None:
        wanted = {i: set(grudges.get(i, ())) for i in range(self.size)}
        for i in range(self.size):
            if wanted[i] == self._grudges.get(i, set()):
                continue
            cmds = "flush set inet chaos cut\n"
            if wanted[i]:
                hosts = ", ".join(self.host(j) for j in sorted(wanted[i]))
                cmds += f"add element inet chaos cut {{ {hosts} }}\n"
            _run("ip", "netns", "exec", self.namespace(i), "nft", "-f", "-", input_text=cmds)
            self._grudges[i] = wanted[i]

    def heal(self) -> None:
        self.set_grudges({})

    def close(self) -> None:
        for ns in reversed(self._namespaces):
            with contextlib.suppress(Exception):
                _run("ip", "netns", "del", ns, check=False)
        self._namespaces.clear()
        for link in reversed(self._links):
            with contextlib.suppress(Exception):
                _run("ip", "link", "del", link, check=False)
        self._links.clear()


def sweep_stale() -> list[str]:
    """Remove namespaces and links left by chaos harnesses that are no longer running."""
    removed: list[str] = []
    if not have_root():
        return removed

    def stale(name: str) -> bool:
        m = _NAME.match(name)
        return bool(m) and not os.path.exists(f"/proc/{m.group(1)}")

    for line in _run("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        if stale(name):
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    for line in _run("ip", "-o", "link", "show", check=False).splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if stale(name):
                _run("ip", "link", "del", name, check=False)
                removed.append(name)
    return removed
