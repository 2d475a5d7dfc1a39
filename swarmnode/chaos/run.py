"""One chaos run: start the cluster, load it, break it on schedule, heal, wait, judge, report.

Everything the run creates (namespaces, bridge, tmpfs mounts, processes, its
scratch directory) is removed on every way out, Ctrl-C and SIGTERM included;
node processes also die with the harness if it is killed outright
(PR_SET_PDEATHSIG), and the next run sweeps namespaces and links whose
harness is gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swarmnode.chaos import oracles
from swarmnode.chaos.clock import ClockUnavailable, build_shim
from swarmnode.chaos.cluster import ChaosCluster, sweep_stale_mounts
from swarmnode.chaos.history import FAIL, INFO, OK, History
from swarmnode.chaos.nemesis import (
    FAULTS,
    ROOT_FAULTS,
    Nemesis,
    ScheduleConfig,
    Window,
    make_schedule,
)
from swarmnode.chaos.network import (
    BridgeNetwork,
    LoopbackNetwork,
    Network,
    have_root,
    sweep_stale,
)
from swarmnode.chaos.workload import NS, VEC_DIM, VEC_NS, Workload, WorkloadConfig, probe_ops
from swarmnode.errors import SwarmError

log = logging.getLogger("swarmnode.chaos")


@dataclass
class ChaosOptions:
    nodes: int = 5
    seed: int = 1
    duration: float = 60.0
    faults: tuple[str, ...] = FAULTS
    clients: int = 6
    rate: float = 20.0
    fault_seconds: tuple[float, float] = (3.0, 10.0)
    gap_seconds: tuple[float, float] = (2.0, 6.0)
    converge_timeout: float = 180.0
    out: Path = Path("chaos-out")
    profile: str = "local"
    node_config: Path | None = None
    keep: bool = False
    plots: bool = True
    loopback: bool = False
    sample_interval: float = 1.0
    # A fixed schedule instead of a drawn one (scripted scenarios in simulations/).
    schedule: list[Window] | None = None
    # Register, counter, set, TTL, vector and claim keys; see WorkloadConfig.
    workload: WorkloadConfig | None = None
    # Called on a thread of its own with (cluster, run clock, stop event) while the
    # run lasts, until convergence has been judged: scripted scenarios observe with it.
    watcher: Callable[[ChaosCluster, Callable[[], float], threading.Event], None] | None = None

    def rerun_command(self) -> str:
        argv = [
            "python",
            "-m",
            "swarmnode.chaos",
            "--seed",
            str(self.seed),
            "--nodes",
            str(self.nodes),
            "--duration",
            f"{self.duration:g}",
            "--clients",
            str(self.clients),
            "--rate",
            f"{self.rate:g}",
            "--nemesis",
            ",".join(self.faults) or "none",
            "--fault-seconds",
            "{:g},{:g}".format(*self.fault_seconds),
            "--gap-seconds",
            "{:g},{:g}".format(*self.gap_seconds),
        ]
        if self.node_config is not None:
            argv += ["--node-config", str(self.node_config)]
        if self.loopback:
            argv.append("--loopback")
        return shlex.join(argv)


@dataclass
class ChaosResult:
    options: ChaosOptions
    environment: dict[str, Any]
    schedule: list[Window]
    violations: dict[str, list[str]]
    counts: dict[str, dict[str, int]]
    converged_after: float | None
    duration: float
    key_rotations: int
    nemesis_errors: list[str]
    resources: list[tuple[float, int, int | None, int | None]] = field(default_factory=list)
    history_path: Path | None = None
    report_path: Path | None = None

    @property
    def ok(self) -> bool:
        return (
            not any(self.violations.values())
            and self.converged_after is not None
            and not self.nemesis_errors
        )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def choose_network(opts: ChaosOptions) -> tuple[Network, list[str]]:
    """Namespaces on a bridge as root (with ip and nft present); loopback otherwise."""
    notes = []
    if not opts.loopback and have_root() and shutil.which("ip") and shutil.which("nft"):
        return BridgeNetwork(opts.nodes).create(), notes
    if opts.loopback:
        why = "--loopback"
    elif not have_root():
        why = "not root"
    else:
        why = "`ip` or `nft` is missing"
    notes.append(
        f"{why}: nodes run on loopback addresses without network namespaces; "
        "partition and disk faults are off, process, clock and key faults remain"
    )
    return LoopbackNetwork(opts.nodes), notes


def listing(client: Any, ns: str) -> oracles.Listing:
    items: oracles.Listing = {}
    cursor = None
    while True:
        args: dict[str, Any] = {"ns": ns, "values": True, "limit": 1000}
        if cursor:
            args["cursor"] = cursor
        page = client.call("list", **args)
        for item in page["items"]:
            item = dict(item)
            item.pop("ns", None)
            key = item.pop("key")
            if item.get("type") == "set":  # `list` leaves set members out
                item["value"] = client.smembers(ns, key)["members"]
            items[key] = item
        cursor = page.get("cursor")
        if not cursor:
            return items


def membership_settled(cluster: ChaosCluster) -> list[str]:
    ids = set(cluster.node_ids())
    out = []
    for node in cluster.nodes:
        try:
            view = {
                m["node_id"]: m["state"] for m in cluster.client(node.index).members()["members"]
            }
        except SwarmError as exc:
            out.append(f"node {node.index}: {exc.message}")
            continue
        wrong = {cluster.node_ids()[i]: view.get(i) for i in ids if view.get(i) != "alive"}
        if wrong:
            out.append(f"node {node.index} sees {wrong}")
    return out


def vectors_found(cluster: ChaosCluster, history: History) -> list[str]:
    """Each node finds every acknowledged vector by searching with it."""
    out = []
    acked = [op for op in history.of("vput") if op.type == OK]
    for node in cluster.nodes:
        client = cluster.client(node.index)
        for op in acked:
            try:
                hits = client.vsearch(VEC_NS, op.value, k=3)["items"]
            except SwarmError as exc:
                out.append(f"node {node.index}: vsearch failed: {exc.message}")
                break
            if op.key not in [h["key"] for h in hits]:
                out.append(f"node {node.index}: vsearch for {op.key}'s vector misses it")
                break
    return out


def read_all(cluster: ChaosCluster) -> dict[int, dict[str, oracles.Listing]]:
    return {
        n.index: {ns: listing(cluster.client(n.index), ns) for ns in (NS, VEC_NS)}
        for n in cluster.nodes
    }


def wait_converged(
    cluster: ChaosCluster, history: History, timeout: float, not_before: float
) -> tuple[float | None, dict[int, dict[str, oracles.Listing]] | None, list[str]]:
    """Poll until membership settles, replicas agree and vectors are found everywhere."""
    start = time.monotonic()
    last: list[str] = []
    while True:
        listings = None
        try:
            last = membership_settled(cluster)
            if not last:
                listings = read_all(cluster)
                last = oracles.compare_replicas(listings)
            if not last:
                last = vectors_found(cluster, history)
        except SwarmError as exc:
            last = [f"read failed: {exc.message}"]
        waited = time.monotonic() - start
        if not last and history.now() >= not_before:
            return waited, listings, []
        if waited > timeout:
            return None, listings, last
        time.sleep(0.5)


class Sampler:
    """RSS and open files of every node, every `interval` seconds, on a thread."""

    def __init__(self, cluster: ChaosCluster, clock: Any, interval: float) -> None:
        self.cluster = cluster
        self.clock = clock
        self.interval = interval
        self.samples: list[tuple[float, int, int | None, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = self.clock()
            for node in self.cluster.nodes:
                self.samples.append((now, node.index, node.rss_bytes(), node.open_files()))


def _install_sigterm() -> Any:
    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):
        return signal.signal(signal.SIGTERM, raise_interrupt)
    return None


def _shield() -> None:
    """Ignore SIGINT and SIGTERM while cleaning up: a second Ctrl-C (or `timeout`,
    which signals the child and then its whole process group) must not cut the
    cleanup short and leave namespaces and mounts behind."""
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_chaos(opts: ChaosOptions) -> ChaosResult:
    """The whole run; always cleans up what it made.

    An interrupted run (Ctrl-C, SIGTERM) raises KeyboardInterrupt after its
    cleanup and leaves SIGINT and SIGTERM ignored: the caller is on its way out,
    and a further Ctrl-C, however soon after the cleanup, must not turn its
    orderly exit into a death by signal."""
    previous = _install_sigterm()
    interrupted = False
    stale = sweep_stale() + sweep_stale_mounts()
    if stale:
        _say(f"removed {len(stale)} namespaces and links left by earlier runs")
    base = Path(tempfile.mkdtemp(prefix="snch-", dir="/tmp"))
    (base / "harness.pid").write_text(f"{os.getpid()}\n")
    opts.out.mkdir(parents=True, exist_ok=True)
    network: Network | None = None
    cluster: ChaosCluster | None = None
    history: History | None = None
    try:
        network, notes = choose_network(opts)
        faults = list(opts.faults)
        if not network.namespaced:
            faults = [f for f in faults if f not in ROOT_FAULTS]
        shim = None
        if "clock" in faults:
            try:
                shim = build_shim(base)
            except ClockUnavailable as exc:
                notes.append(f"clock faults off: {exc}")
                faults.remove("clock")
        if opts.schedule is not None:
            schedule = [w for w in opts.schedule if w.fault in faults]
            if len(schedule) < len(opts.schedule):
                notes.append("fault windows this machine cannot apply were left out")
            disk_nodes = tuple(sorted({w.params["node"] for w in schedule if w.fault == "disk"}))
        else:
            disk_nodes = (opts.seed % opts.nodes,) if "disk" in faults else ()
            schedule = make_schedule(
                opts.seed,
                opts.nodes,
                ScheduleConfig(
                    faults=tuple(faults),
                    duration=opts.duration,
                    fault_seconds=opts.fault_seconds,
                    gap_seconds=opts.gap_seconds,
                    disk_node=disk_nodes[0] if disk_nodes else None,
                ),
            )
        for note in notes:
            _say(f"note: {note}")
        config_toml = opts.node_config.read_text() if opts.node_config else ""
        cluster = ChaosCluster(
            base,
            network,
            profile=opts.profile,
            config_toml=config_toml,
            clock_shim=shim,
            disk_nodes=disk_nodes,
        )
        _say(
            f"starting {opts.nodes} nodes "
            f"({'namespaces on a bridge' if network.namespaced else 'loopback'}); "
            f"{len(schedule)} fault windows over {opts.duration:g}s, seed {opts.seed}"
        )
        cluster.start()
        settle, _, why = _wait(lambda: membership_settled(cluster), opts.converge_timeout)
        if settle is None:
            raise RuntimeError(f"the cluster never formed: {why}")
        c0 = cluster.client(0)
        c0.ns_init(VEC_NS, dim=VEC_DIM, metric="cosine")
        _wait(
            lambda: [
                n.index
                for n in cluster.nodes
                if cluster.client(n.index).ns_stats(VEC_NS).get("dim") != VEC_DIM
            ],
            opts.converge_timeout,
        )
        offered = probe_ops(c0)
        history = History(opts.out / "history.jsonl")
        clock = history.now
        workload = Workload(
            lambda i: cluster.nodes[i].socket,
            opts.nodes,
            history,
            opts.workload or WorkloadConfig(clients=opts.clients, rate=opts.rate),
            opts.seed,
            offered,
        )
        nemesis = Nemesis(cluster, schedule, clock, say=_say)
        sampler = Sampler(cluster, clock, opts.sample_interval)
        sampler.start()
        watch_stop = threading.Event()
        if opts.watcher is not None:
            watcher = opts.watcher
            threading.Thread(
                target=lambda: watcher(cluster, clock, watch_stop), name="watcher", daemon=True
            ).start()
        workload.start()
        nemesis.start()
        try:
            _progress(history, opts.duration)
        except BaseException:
            _shield()
            raise
        finally:
            nemesis.stop()
            workload.stop()
        _say(f"t={history.now():7.1f} faults over, clients stopped; waiting for convergence")
        ttl_slack = 1.0 + (ScheduleConfig().clock_jump[1] if "clock" in faults else 0.0)
        last_ttl = max((op.invoked + op.value[1] for op in history.of("put_ttl")), default=0.0)
        converged, listings, why = wait_converged(
            cluster, history, opts.converge_timeout, not_before=last_ttl + ttl_slack + 1.0
        )
        sampler.stop()
        watch_stop.set()
        checked_at = history.now()
        if converged is None or listings is None:
            violations = {"convergence": [f"not converged after {opts.converge_timeout:g}s", *why]}
            if listings is not None:
                violations |= oracles.check_all(history, listings, checked_at, ttl_slack)
        else:
            violations = oracles.check_all(history, listings, checked_at, ttl_slack)
        history.close()
        result = ChaosResult(
            options=opts,
            environment={
                "network": "namespaces" if network.namespaced else "loopback",
                "faults": faults,
                "notes": notes,
                "offered": sorted(offered),
                "disk_nodes": list(disk_nodes),
            },
            schedule=schedule,
            violations=violations,
            counts=count_outcomes(history),
            converged_after=converged,
            duration=history.now(),
            key_rotations=nemesis.key_rotations,
            nemesis_errors=nemesis.errors,
            resources=sampler.samples,
            history_path=opts.out / "history.jsonl",
        )
        from swarmnode.chaos.report import write_outputs

        write_outputs(result, history)
        return result
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        _shield()
        if history is not None:
            history.close()
        if cluster is not None:
            cluster.close()
        if network is not None:
            network.close()
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            _say(f"kept the nodes' data and logs in {base}")
        if not interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _wait(check: Any, timeout: float) -> tuple[float | None, Any, Any]:
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < timeout:
        try:
            last = check()
        except SwarmError as exc:
            last = [exc.message]
        if not last:
            return time.monotonic() - start, None, None
        time.sleep(0.25)
    return None, None, last


def _progress(history: History, duration: float) -> None:
    next_report = 10.0
    while history.now() < duration:
        time.sleep(min(1.0, max(0.0, duration - history.now())))
        if history.now() >= next_report:
            c = count_outcomes(history)["all"]
            _say(
                f"t={history.now():7.1f} {c.get(OK, 0)} ok, {c.get(FAIL, 0)} fail, "
                f"{c.get(INFO, 0)} info"
            )
            next_report += 10.0


def count_outcomes(history: History) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {"all": {}}
    for op in history.ops:
        per = counts.setdefault(op.f, {})
        per[op.type] = per.get(op.type, 0) + 1
        counts["all"][op.type] = counts["all"].get(op.type, 0) + 1
    return counts


def result_json(result: ChaosResult) -> dict[str, Any]:
    opts = asdict(result.options)
    opts.pop("schedule", None)
    opts.pop("watcher", None)
    opts.pop("workload", None)
    opts["out"] = str(opts["out"])
    opts["node_config"] = str(opts["node_config"]) if opts["node_config"] else None
    return {
        "ok": result.ok,
        "options": opts,
        "rerun": result.options.rerun_command(),
        "environment": result.environment,
        "schedule": [asdict(w) for w in result.schedule],
        "violations": result.violations,
        "counts": result.counts,
        "converged_after_s": result.converged_after,
        "duration_s": result.duration,
        "key_rotations": result.key_rotations,
        "nemesis_errors": result.nemesis_errors,
    }


def dump_json(result: ChaosResult, path: Path) -> None:
    path.write_text(json.dumps(result_json(result), indent=2, default=str) + "\n")
