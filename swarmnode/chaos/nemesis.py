"""Faults on a seeded schedule, applied to real processes, a real network and real clocks.

`make_schedule(seed, ...)` draws the whole schedule before the run starts: a
quiet gap, a fault window, a quiet gap, ... Each window names its fault and
everything random about it (which nodes, which split, how far the clock
jumps), so the same seed and options give the same schedule again; the rerun
command of a failing run is that seed. (Real processes do not replay to the
microsecond as the simulator does; the faults, their order, targets and
timing do.)

Faults (names accepted by `--nemesis`):

- `partition`: one of `halves`, `majority` (a minority cut off), `bridge`
  (two sides that both hear one node in the middle), `ring` (each node
  hears only its two neighbours) and `oneway` (one side stops hearing the
  other, which still hears it); needs network namespaces;
- `kill`: SIGKILL one node, restart it on its data when the window ends;
- `pause`: SIGSTOP one node for the window (a long GC-like stall), SIGCONT;
- `clock`: one node's wall clock jumps (up to a few seconds, either way) or
  drifts (a percent or two) for the window, then is set right;
- `disk`: the disk node's store filesystem is filled to the last byte, then
  freed;
- `rekey`: a cluster-key rotation in the three steps of docs/OPERATIONS.md
  (add the new key, seal with it, drop the old one), each a key-file change
  and SIGHUP on every node.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmnode.chaos.cluster import ChaosCluster

log = logging.getLogger("swarmnode.chaos.nemesis")

FAULTS = ("partition", "kill", "pause", "clock", "disk", "rekey")
NETWORK_FAULTS = frozenset({"partition"})
ROOT_FAULTS = frozenset({"partition", "disk"})
PARTITIONS = ("halves", "majority", "bridge", "ring", "oneway")


@dataclass
class Window:
    """One fault: when, what, and what it was drawn to hit."""

    start: float
    duration: float
    fault: str
    params: dict[str, Any]
    applied_at: float | None = None
    healed_at: float | None = None
    note: str = ""

    @property
    def end(self) -> float:
        return self.start + self.duration

    def describe(self) -> str:
        detail = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.fault} {detail}".strip()


@dataclass
class ScheduleConfig:
    faults: tuple[str, ...] = FAULTS
    duration: float = 60.0
    fault_seconds: tuple[float, float] = (3.0, 10.0)
    gap_seconds: tuple[float, float] = (2.0, 6.0)
    clock_jump: tuple[float, float] = (0.2, 3.0)
    disk_node: int | None = None


def _split(rng: random.Random, n: int, size: int) -> tuple[list[int], list[int]]:
    nodes = list(range(n))
    rng.shuffle(nodes)
    return sorted(nodes[:size]), sorted(nodes[size:])


def draw_fault(rng: random.Random, fault: str, n: int, cfg: ScheduleConfig) -> dict[str, Any]:
    if fault == "partition":
        shape = rng.choice(PARTITIONS if n >= 3 else ("halves", "oneway"))
        if shape == "halves":
            a, b = _split(rng, n, n // 2)
            return {"shape": shape, "a": a, "b": b}
        if shape == "majority":
            a, b = _split(rng, n, max(1, (n - 1) // 2))
            return {"shape": shape, "a": a, "b": b}
        if shape == "bridge":
            nodes = list(range(n))
            rng.shuffle(nodes)
            mid = nodes[0]
            rest = nodes[1:]
            return {"shape": shape, "bridge": mid, "a": sorted(rest[::2]), "b": sorted(rest[1::2])}
        if shape == "ring":
            order = list(range(n))
            rng.shuffle(order)
            return {"shape": shape, "order": order}
        a, b = _split(rng, n, max(1, n // 2))
        return {"shape": "oneway", "deaf": a, "unheard": b}
    if fault in ("kill", "pause"):
        return {"node": rng.randrange(n)}
    if fault == "clock":
        node = rng.randrange(n)
        if rng.random() < 0.5:
            return {
                "node": node,
                "jump": round(rng.choice((-1, 1)) * rng.uniform(*cfg.clock_jump), 3),
            }
        return {"node": node, "rate": round(rng.choice((0.98, 0.99, 1.01, 1.02)), 3)}
    if fault == "disk":
        return {"node": cfg.disk_node if cfg.disk_node is not None else 0}
    if fault == "rekey":
        return {}
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")


def make_schedule(seed: int, n: int, cfg: ScheduleConfig) -> list[Window]:
    """Every fault window of a run, drawn from `seed` alone."""
    rng = random.Random(seed)
    windows: list[Window] = []
    if not cfg.faults:
        return windows
    t = rng.uniform(*cfg.gap_seconds)
    while True:
        fault = rng.choice(cfg.faults)
        duration = round(rng.uniform(*cfg.fault_seconds), 3)
        if t + duration > cfg.duration:
            return windows
        windows.append(Window(round(t, 3), duration, fault, draw_fault(rng, fault, n, cfg)))
        t += duration + rng.uniform(*cfg.gap_seconds)


def grudges_of(params: dict[str, Any], n: int) -> dict[int, set[int]]:
    """Who drops packets from whom, for a partition window."""
    shape = params["shape"]
    g: dict[int, set[int]] = {i: set() for i in range(n)}
    if shape in ("halves", "majority") or shape == "bridge":
        a, b = set(params["a"]), set(params["b"])
        for i in a:
            g[i] |= b
        for i in b:
            g[i] |= a
    elif shape == "ring":
        order = params["order"]
        for pos, i in enumerate(order):
            neighbours = {order[(pos - 1) % n], order[(pos + 1) % n]}
            g[i] = set(range(n)) - neighbours - {i}
    elif shape == "oneway":
        for i in params["deaf"]:
            g[i] |= set(params["unheard"])
    return g


@dataclass
class Nemesis:
    """Runs a schedule against a cluster on a thread of its own; `stop()` heals everything."""

    cluster: ChaosCluster
    schedule: list[Window]
    clock: Callable[[], float]
    say: Callable[[str], None] = print
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _active: list[Window] = field(default_factory=list)
    _killed: set[int] = field(default_factory=set)
    key_rotations: int = 0
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
        self.heal_all()

    def _sleep_until(self, t: float) -> bool:
        """False if stopped first."""
        return not self._stop.wait(max(0.0, t - self.clock()))

    def _run(self) -> None:
        for w in self.schedule:
            if not self._sleep_until(w.start):
                return
            self._do(w, self._apply)
            if w.fault == "rekey":
                self._rotate(w)
            elif not self._sleep_until(w.end):
                return
            self._do(w, self._heal)

    def _do(self, w: Window, action: Callable[[Window], None]) -> None:
        try:
            action(w)
        except Exception as exc:  # a fault that fails to apply is a finding, not a crash
            msg = f"t={self.clock():.1f} {action.__name__.strip('_')} {w.describe()}: {exc!r}"
            log.error("event=nemesis_error %s", msg)
            self.errors.append(msg)

    def _apply(self, w: Window) -> None:
        w.applied_at = self.clock()
        self._active.append(w)
        self.say(f"t={w.applied_at:7.1f} start {w.describe()}")
        c, p = self.cluster, w.params
        if w.fault == "partition":
            c.network.set_grudges(grudges_of(p, len(c)))
        elif w.fault == "kill":
            c.kill(p["node"])
            self._killed.add(p["node"])
        elif w.fault == "pause":
            c.pause(p["node"])
        elif w.fault == "clock":
            clock = c.nodes[p["node"]].clock
            assert clock is not None, "the clock shim is not loaded"
            if "jump" in p:
                clock.jump(p["jump"])
            else:
                clock.drift(p["rate"])
        elif w.fault == "disk":
            w.note = f"ballast {c.fill_disk(p['node'])} bytes"

    def _heal(self, w: Window) -> None:
        c, p = self.cluster, w.params
        if w.fault == "partition":
            c.network.heal()
        elif w.fault == "kill":
            c.restart(p["node"])
            self._killed.discard(p["node"])
        elif w.fault == "pause":
            c.resume(p["node"])
        elif w.fault == "clock":
            clock = c.nodes[p["node"]].clock
            if clock is not None:
                clock.reset()
        elif w.fault == "disk":
            c.free_disk(p["node"])
        if w in self._active:
            self._active.remove(w)
        w.healed_at = self.clock()
        self.say(f"t={w.healed_at:7.1f} heal  {w.describe()}")

    def _rotate(self, w: Window) -> None:
        """The three steps of a key rotation, spread over the window."""
        c = self.cluster
        old = c.master_key.read_text().split()[0]
        new = base64.b64encode(os.urandom(32)).decode()
        steps = ([old, new], [new, old], [new])
        for n, keys in enumerate(steps):
            if n and not self._sleep_until(w.start + w.duration * n / len(steps)):
                break
            for i in range(len(c)):
                c.write_key_file(i, keys)
                c.sighup(i)
        else:
            c.master_key.write_text(new + "\n")
            self.key_rotations += 1
            return
        for i in range(len(c)):  # stopped mid-rotation: leave every node on one key set
            c.write_key_file(i, [old, new])
            c.sighup(i)

    def heal_all(self) -> None:
        """Undo every fault still in force (also after an error or Ctrl-C)."""
        c = self.cluster
        if c.network.namespaced:
            c.network.heal()
        for node in c.nodes:
            if node.paused:
                c.resume(node.index)
            if node.clock is not None and (node.clock.offset or node.clock.rate != 1.0):
                node.clock.reset()
            if node.tmpfs is not None:
                c.free_disk(node.index)
        for i in sorted(self._killed):
            try:
                c.restart(i)
            except Exception as exc:
                self.errors.append(f"restart of node {i} after the run: {exc!r}")
        self._killed.clear()
        now = self.clock()
        for w in self._active:
            w.healed_at = now
        self._active.clear()

    def windows(self) -> list[Window]:
        return [w for w in self.schedule if w.applied_at is not None]
