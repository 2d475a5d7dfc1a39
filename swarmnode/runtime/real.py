"""The real runtime: asyncio (uvloop where available), UDP gossip, a writer thread.

It owns everything the node must not: the event loop, the gossip endpoint,
the group-commit writer thread, the Unix-socket API server, signals and the
clock. It plugs them into a `NodeHost` (`runtime/host.py`), which feeds the
node its steps and carries out its Readys exactly as the simulator's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
import time
from typing import Any

from swarmnode.analytics import Analytics, gossip_counters
from swarmnode.api.server import ApiServer, RequestContext
from swarmnode.api.session import Session
from swarmnode.api.unixsock import ApiSocketError
from swarmnode.config import Config
from swarmnode.consensus.group import open_group
from swarmnode.consensus.storage import LmdbStorage
from swarmnode.errors import BadRequest, Forbidden, SwarmError
from swarmnode.metrics import Registry
from swarmnode.node import Node
from swarmnode.replication.merkle import leaf_bits
from swarmnode.resp import RespServer
from swarmnode.runtime import heap, sdnotify
from swarmnode.runtime.host import NodeHost
from swarmnode.runtime.metrics_http import MetricsServer
from swarmnode.runtime.ticker import DeadlineTicker
from swarmnode.sansio import Address, Message
from swarmnode.service.build import NodeServices, assemble
from swarmnode.service.chain import Service
from swarmnode.service.table import OPERATIONS
from swarmnode.storage.lmdb_store import Store
from swarmnode.storage.writer import GroupCommitter
from swarmnode.transport.endpoint import GossipEndpoint, InsecureBindError, check_bind_allowed
from swarmnode.transport.keyring import KeyFileError, Keyring
from swarmnode.vectors.service import VectorMemory

log = logging.getLogger("swarmnode.runtime")


class SystemClock:
    """The host's clocks: monotonic for timers, wall time for HLC and TTLs."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


class NodeProcess:
    """One running node; `await run()` until a signal or `stop()`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: Store | None = None
        self.node: Node | None = None
        self.host: NodeHost | None = None
        self.endpoint: GossipEndpoint | None = None
        self.server: ApiServer | None = None
        self.committer: GroupCommitter | None = None
        self.analytics: Analytics | None = None
        self.vectors: VectorMemory | None = None
        self.services: NodeServices | None = None
        self.service: Service | None = None
        self.resp: RespServer | None = None
        self.raft_storage: LmdbStorage | None = None
        self.metrics = Registry()
        self.metrics_server: MetricsServer | None = None
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        keyring = Keyring.from_file(cfg.cluster_key_file) if cfg.cluster_key_file else None
        # Everything that can be refused (an unsafe bind, a busy port) is refused
        # before the data directory is created or touched.
        check_bind_allowed(cfg.bind[0], keyring, cfg.insecure)
        try:
            self.endpoint = GossipEndpoint(
                cfg.bind,
                keyring,
                cfg.transport,
                self._on_message,
                insecure=cfg.insecure,
                metrics=self.metrics,
            )
            await self.endpoint.start()
            if cfg.metrics.address is not None:
                self.metrics_server = MetricsServer(
                    self.metrics.exposition, cfg.metrics, metrics=self.metrics
                )
                await self.metrics_server.start()
            ae = cfg.antientropy
            self.store = store = await asyncio.to_thread(
                Store,
                cfg.data_dir,
                cfg.store,
                node_id=cfg.node_id,
                leaf_bits=leaf_bits(ae.tree_fanout, ae.tree_depth),
            )
            await self._serve(loop, store)
        finally:
            await self._shutdown()

    async def _serve(self, loop: asyncio.AbstractEventLoop, store: Store) -> None:
        cfg = self.config
        assert self.endpoint is not None
        clock = SystemClock()
        rng = random.Random()
        group = open_group(
            store.node_id, cfg, cfg.data_dir / "raft", rng, clock.monotonic(), sync=cfg.store.sync
        )
        if group is not None:
            self.raft_storage = group[1]
        self.committer = GroupCommitter(
            store,
            lambda committed: loop.call_soon_threadsafe(self._committed, committed),
            raft_storage=self.raft_storage,
            metrics=self.metrics,
        )
        self.committer.start()
        self.node = node = Node(
            cfg,
            store,
            address=self.endpoint.address,
            rng=rng,
            now=clock.monotonic(),
            consensus=group[0] if group is not None else None,
            metrics=self.metrics,
        )
        self.host = host = NodeHost(node, self.committer, self.endpoint, clock, loop)
        served = assemble(host, cfg, cfg.data_dir)
        service, self.services = served.service, served.services
        self.vectors, self.analytics = served.vectors, served.analytics
        self.services.stats_sections.append(self._extra_stats)
        self.service = service
        eager = [op.name for op in OPERATIONS if op.eager]
        self.server = ApiServer(
            cfg.socket_path, service.call, cfg.api, eager_ops=eager, metrics=self.metrics
        )
        await self.server.start()
        if cfg.resp.socket_path is not None or cfg.resp.address is not None:
            self.resp = RespServer(
                service.call,
                socket_path=cfg.resp.socket_path,
                tcp=cfg.resp.address,
                insecure=cfg.insecure,
                authenticate=self._resp_authenticate,
                admit=self._resp_admits if cfg.agents.require_tokens else None,
                limits=cfg.resp.limits(),
                metrics=self.metrics,
            )
            await self.resp.start()
        host.start(cfg.join)
        host, port = self.endpoint.address
        log.info(
            "event=ready node_id=%s gossip=%s:%d socket=%s data_dir=%s",
            node.node_id,
            host,
            port,
            cfg.socket_path,
            cfg.data_dir,
        )
        print(
            f"swarmnode ready: node {node.node_id} gossip {host}:{port} socket {cfg.socket_path}",
            flush=True,
        )
        self._announce_extras()
        sdnotify.ready(f"node {node.node_id} gossip {host}:{port}")
        self.ready.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.reload_key)
        await self._ticker()

    async def _ticker(self) -> None:
        """Tick the node (and sample analytics) when either has work due, until stopped."""
        host, analytics = self.host, self.analytics
        assert host is not None and analytics is not None

        def tick() -> None:
            host.tick()
            analytics.maybe_sample(time.monotonic(), lambda: gossip_counters(self.metrics))

        def deadline() -> float:
            return min(host.node.next_deadline(), analytics.sample_due())

        ticker = DeadlineTicker(
            asyncio.get_running_loop(), self.config.node.tick_interval, tick, deadline
        )
        host.stepped = ticker.stepped
        ticker.start()
        try:
            await self._stop.wait()
        finally:
            ticker.stop()
            host.stepped = None

    def _announce_extras(self) -> None:
        """Where the optional front ends listen (ports chosen by the kernel included)."""
        if self.resp is not None:
            tcp = self.resp.tcp_address
            where = f"{tcp[0]}:{tcp[1]}" if tcp else "-"
            print(
                f"swarmnode resp: socket {self.config.resp.socket_path or '-'} tcp {where}",
                flush=True,
            )
        if self.metrics_server is not None:
            host, port = self.metrics_server.address
            print(f"swarmnode metrics: http://{host}:{port}/metrics", flush=True)

    def reload_key(self) -> None:
        """SIGHUP: re-read the cluster key file (one step of a key rotation)."""
        path = self.config.cluster_key_file
        if path is None or self.endpoint is None:
            log.warning("event=key_reload_skipped reason=no_cluster_key_file")
            return
        sdnotify.reloading()
        try:
            self.endpoint.reload_keyring(Keyring.from_file(path))
        except (OSError, ValueError) as exc:
            log.error("event=key_reload_failed path=%s error=%s", path, exc)
            return
        finally:
            sdnotify.ready()
        log.info("event=key_reloaded path=%s", path)

    def _committed(self, committed: Any) -> None:
        if self.host is not None:
            self.host.on_committed(committed)

    def _on_message(self, sender: Address, msg: Message) -> None:
        if self.host is not None:
            self.host.take_message(sender, msg)

    async def _resp_authenticate(self, ctx: RequestContext, token: str) -> str | None:
        """RESP's AUTH: the node's own `hello`, so the connection speaks for the agent."""
        assert self.service is not None
        try:
            reply = await self.service.call("hello", {"token": token}, ctx)
        except (Forbidden, BadRequest):
            return None
        return reply.get("agent")

    def _resp_admits(self, session: Session) -> bool:
        """With tokens required, only the socket's owner may skip AUTH (as on the msgpack
        socket, when `owner_is_admin`)."""
        return self.config.agents.owner_is_admin and session.is_owner

    def _extra_stats(self) -> dict[str, Any]:
        """What `stats` shows of the RESP front end beside its metrics."""
        return self.resp.stats_extras() if self.resp else {}

    async def _shutdown(self) -> None:
        sdnotify.stopping()
        log.info("event=stopping")
        if self.host is not None and self.endpoint is not None:
            self.host.leave()
        if self.resp is not None:
            await self.resp.close()
        if self.server is not None:
            await self.server.close()
        if self.endpoint is not None:
            await self.endpoint.close()
        if self.vectors is not None:
            await self.vectors.close()
        if self.committer is not None:
            await asyncio.to_thread(self.committer.stop)
        if self.host is not None:
            self.host.close()
        if self.store is not None:
            self.store.close()
        if self.raft_storage is not None:
            self.raft_storage.close()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        log.info("event=stopped")


def run_node(config: Config) -> int:
    """Run a node until SIGINT/SIGTERM; returns the process exit code."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    process = NodeProcess(config)
    heap.tune()

    async def serve() -> None:
        running = asyncio.ensure_future(process.run())
        started = asyncio.ensure_future(process.ready.wait())
        await asyncio.wait((running, started), return_when=asyncio.FIRST_COMPLETED)
        if started.done():
            log.info("event=heap_settled frozen_objects=%d", heap.settle())
        else:
            started.cancel()
        await running

    try:
        runner(serve())
    except SwarmError as exc:
        print(f"swarmnode: {exc.message}", file=sys.stderr)
        return 1
    except (KeyFileError, InsecureBindError) as exc:
        # A setting that cannot work, like any refused configuration.
        print(f"swarmnode: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, ApiSocketError) as exc:
        print(f"swarmnode: {exc}", file=sys.stderr)
        return 1
    return 0
