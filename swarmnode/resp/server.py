"""The RESP server: a Unix socket and optionally a TCP port, one protocol object per client.

Each connection feeds what it reads to a `RequestParser`, runs each command
through `Commands.execute` and writes the replies **in request order**, as
RESP requires (the msgpack API replies in completion order instead).

Order of effects is Redis's too: a command starts only once every earlier
command of its connection has finished, so a pipelined `SET k v; GET k` reads
its own write and `HELLO 3` changes the protocol of exactly the replies after
it. The one exception keeps pipelined writes fast: a blind write (`BLIND_WRITES` in routes.py:
SET without GET, INCR and friends, SADD, SREM, a one-key DEL, EXPIRE without
conditions) may start while only blind writes are still running, because the
node queues a write for its group commit before it waits, in the order the
writes were started; pipelined writes therefore share commits as they would
from separate clients, and their replies still come back in order.

Commands run eagerly: a command starts inside the read callback and, if it
finishes without waiting (a GET, a PING), its reply is written with the
others of the same read in one `write`; only a command that has to wait (a
write waiting for its fsync) continues in a task. Until its first wait a
command therefore runs with no current task, the rule the msgpack server's
eager ops obey too: the node operations used here do not call
`asyncio.timeout()` or `asyncio.current_task()` before they wait.

Back-pressure: a connection with `max_pending_per_conn` commands started or
queued and not yet answered, or with `max_output_bytes` unsent, is no longer
read until it drains; a client that pipelines faster than the node works, or
stops reading its replies, is slowed by its own socket buffer. A pub/sub
client more than `max_pubsub_output_bytes` behind is disconnected.

Protocol errors are answered as Redis answers them (`-ERR Protocol error:
...`), after the replies already due, and the connection is then closed.

Who may run commands: with an `authenticate` hook, `AUTH` (or `HELLO ...
AUTH`) presents a token that the hook checks (the node's own `hello`, so the
connection then speaks for that agent); `admit` says whether a connection may
run commands before it authenticates (given its session: the peer's uid on the
Unix socket, nothing over TCP), and a connection it does not admit gets
`NOAUTH`. Without `admit`, every connection is admitted. The TCP listener
binds loopback addresses only, unless the caller passes `insecure=True` or
both hooks (then every TCP connection must AUTH): RESP has no encryption, so
anything else would expose the node's data to the network. The Unix socket is
created like the msgpack API's: a private directory, mode 0600, a lock file
against a second server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from swarmnode.api.eager import resume
from swarmnode.api.limits import ApiLimits
from swarmnode.api.server import Dispatch, RequestContext
from swarmnode.api.session import Session as ApiSession
from swarmnode.api.session import peer_uid
from swarmnode.api.unixsock import (
    SUN_PATH_MAX,
    ApiSocketError,
    acquire_lock,
    bind_unix,
    prepare_directory,
)
from swarmnode.errors import SwarmError
from swarmnode.metrics import Registry, merge_tree
from swarmnode.resp.codec import RESP2, RESP3, ErrorReply, ProtocolError, RequestParser
from swarmnode.resp.commands import Authenticate, Commands
from swarmnode.resp.limits import RespLimits
from swarmnode.resp.routes import Route
from swarmnode.resp.session import Session

log = logging.getLogger("swarmnode.resp")


class InsecureRespBind(ValueError):
    """A TCP bind off loopback without authentication or an explicit `insecure`."""


def check_tcpbind_unix(host: str, *, insecure: bool, auth_required: bool) -> None:
    """Refuse a TCP bind off loopback unless authentication is required or `insecure` is set."""
    if host == "localhost":
        return
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"RESP bind host must be an IP literal or localhost, got {host!r}"
        ) from None
    if not ip.is_loopback and not insecure and not auth_required:
        raise InsecureRespBind(
            f"refusing to serve RESP on {host}: it is not a loopback address and RESP carries "
            "no encryption; configure authentication, bind 127.0.0.1, or pass insecure"
        )


class RespServer:
    """Serves the Redis protocol for a node's `dispatch` (the msgpack API's operations)."""

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        socket_path: Path | None = None,
        tcp: tuple[str, int] | None = None,
        insecure: bool = False,
        authenticate: Authenticate | None = None,
        admit: Callable[[ApiSession], bool] | None = None,
        limits: RespLimits | None = None,
        metrics: Registry | None = None,
    ) -> None:
        if socket_path is None and tcp is None:
            raise ValueError("RespServer needs a socket_path, a tcp (host, port), or both")
        if admit is not None and authenticate is None:
            raise ValueError("RespServer: admit without authenticate would let nobody in")
        if tcp is not None:
            check_tcpbind_unix(tcp[0], insecure=insecure, auth_required=admit is not None)
        self._admit = admit
        if socket_path is not None and len(os.fsencode(socket_path)) > SUN_PATH_MAX:
            raise ApiSocketError(
                f"RESP socket path {socket_path} is longer than the {SUN_PATH_MAX} bytes a "
                "Unix socket address can hold"
            )
        self._path = Path(socket_path) if socket_path is not None else None
        self._tcp = tcp
        self.limits = limits or RespLimits()
        self.commands = Commands(
            dispatch, authenticate=authenticate, server_stats=self.stats, limits=self.limits
        )
        self._api_limits = ApiLimits()
        self._servers: list[asyncio.AbstractServer] = []
        self._lock_fd: int | None = None
        self._inode: int | None = None
        self._tcp_address: tuple[str, int] | None = None
        self._connections: set[_Connection] = set()
        self._ids = itertools.count(1)
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        """Subscription shutdowns of connections that went away, kept until they finish."""
        self._metrics = m = metrics if metrics is not None else Registry()
        self._connections_total = m.counter(
            "swarmnode_resp_connections_total",
            "Redis-protocol connections accepted.",
            stats=("resp", "connections_total"),
        )
        self._refused = m.counter(
            "swarmnode_resp_connections_refused_total",
            "Redis-protocol connections refused (too many, or shutting down).",
            stats=("resp", "connections_refused"),
        )
        self._protocol_errors = m.counter(
            "swarmnode_resp_protocol_errors_total",
            "Redis-protocol connections closed for input that is not RESP.",
            stats=("resp", "protocol_errors"),
        )
        self._slow_subscribers = m.counter(
            "swarmnode_resp_slow_subscribers_dropped_total",
            "Subscribers disconnected for not reading their messages.",
            stats=("resp", "slow_subscribers_dropped"),
        )
        connections = self._connections
        m.gauge(
            "swarmnode_resp_connections_open",
            "Redis-protocol connections open now.",
            fn=lambda: len(connections),
            stats=("resp", "connections_open"),
        )
        m.gauge(
            "swarmnode_resp_pending_commands",
            "Commands read and not yet answered, over all connections.",
            fn=lambda: sum(c.pending for c in connections),
            stats=("resp", "pending"),
        )
        m.gauge(
            "swarmnode_resp_subscribers",
            "Connections in subscriber mode.",
            fn=lambda: sum(1 for c in connections if c.session and c.session.subscribed),
            stats=("resp", "subscribers"),
        )

    @property
    def socket_path(self) -> Path | None:
        return self._path

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """The bound (host, port) once started (the real port when 0 was asked for)."""
        return self._tcp_address

    async def start(self) -> None:
        if self._servers or self._closing:
            raise RuntimeError("RespServer.start() called twice")
        loop = asyncio.get_running_loop()
        try:
            if self._path is not None:
                prepare_directory(self._path.parent)
                self._lock_fd = acquire_lock(self._path)
                sock = bind_unix(self._path, self.limits.listen_backlog)
                self._inode = os.stat(self._path).st_ino
                server = await loop.create_unix_server(
                    lambda: _Connection(self), sock=sock, backlog=self.limits.listen_backlog
                )
                self._servers.append(server)
                log.info("resp_listening path=%s", self._path)
            if self._tcp is not None:
                host, port = self._tcp
                server = await loop.create_server(
                    lambda: _Connection(self),
                    host,
                    port,
                    backlog=self.limits.listen_backlog,
                    reuse_address=True,
                )
                self._servers.append(server)
                bound = server.sockets[0].getsockname()
                self._tcp_address = (bound[0], bound[1])
                log.info("resp_listening tcp=%s:%d", *self._tcp_address)
        except BaseException:
            await self._release()
            raise

    async def close(self) -> None:
        """Stop accepting; running commands get `close_grace` to finish, then connections drop."""
        if self._closing:
            return
        self._closing = True
        for server in self._servers:
            server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.shut_down()
        deadline = time.monotonic() + self.limits.close_grace
        for connection in connections:
            await connection.wait_drained(max(0.0, deadline - time.monotonic()))
        for connection in connections:
            await connection.finish()
        await self._release()
        log.info("resp_closed")

    async def _release(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers = []
        if self._path is not None and self._inode is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self._path).st_ino == self._inode:
                    os.unlink(self._path)
            self._inode = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def __aenter__(self) -> RespServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stats(self) -> dict[str, Any]:
        """The `resp` section of the node's `stats`: counters since start and what is open."""
        return merge_tree(self._metrics.snapshot("resp"), self.stats_extras()["resp"])

    def stats_extras(self) -> dict[str, Any]:
        """What the `resp` section shows beside the registry's metrics."""
        return {
            "resp": {
                "tcp_port": self._tcp_address[1] if self._tcp_address else 0,
                **self.commands.stats(),
            }
        }


class _Connection(asyncio.Protocol):
    """One client: parser, replies in order, the commands waiting their turn."""

    def __init__(self, server: RespServer) -> None:
        self._server = server
        self._commands = server.commands
        self._limits = server.limits
        self._parser = RequestParser(self._limits.codec)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.session: Session | None = None
        self._replies: deque[bytes | asyncio.Task[bytes]] = deque()
        """Replies in request order: encoded, or the task still computing one."""
        self._running = 0
        self._running_blind = True
        """Whether every running command is a blind write (so another may start beside them)."""
        self._backlog: deque[tuple[list[bytes], Route | None, bool]] = deque()
        """Commands parsed but waiting for earlier ones to finish (argv, route, blind)."""
        self._out: list[bytes] = []
        self._reading = True
        self._write_paused = False
        self._closing = False
        self._lost = False
        self._drained = asyncio.Event()
        self._drained.set()

    @property
    def pending(self) -> int:
        return len(self._replies) + len(self._backlog)

    # --- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        server = self._server
        if server._closing or len(server._connections) >= self._limits.max_connections:
            server._refused.inc()
            log.warning("resp_connection_refused open=%d", len(server._connections))
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            self._closing = True
            return
        transport.set_write_buffer_limits(high=self._limits.max_output_bytes)
        connection_id = next(server._ids)
        identity = ApiSession(peer_uid(transport.get_extra_info("socket")))
        self.session = Session(
            connection_id,
            RequestContext(connection_id, 0, server._api_limits, identity),
            authenticated=server._admit is None or server._admit(identity),
            push=self._push,
            close=self._quit,
            disconnect=self._disconnect,
        )
        server._connections.add(self)
        server._connections_total.inc()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            commands = self._parser.feed(data)
        except ProtocolError as exc:
            for argv in exc.commands:
                if not self._closing:
                    self._submit(argv)
            self._protocol_error(exc)
            self._flush()
            return
        for argv in commands:
            if self._closing:
                break
            self._submit(argv)
        self._flush()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closing = True
        self._server._connections.discard(self)
        for item in self._replies:
            if isinstance(item, asyncio.Task):
                item.cancel()
        self._backlog.clear()
        self._drained.set()
        if self.session is not None and self.session.subscriptions is not None:
            task = asyncio.get_running_loop().create_task(self.session.subscriptions.close())
            self._server._background.add(task)
            task.add_done_callback(self._server._background.discard)

    # --- running commands in order -----------------------------------------------------

    def _submit(self, argv: list[bytes]) -> None:
        route = self._commands.route(argv[0])
        blind = route is not None and route.blind is not None and route.blind(argv)
        if self._backlog or not self._may_start(blind):
            self._backlog.append((argv, route, blind))
            return
        self._start(argv, route, blind)

    def _may_start(self, blind: bool) -> bool:
        """Whether a command may start now: nothing runs, or only blind writes do and it is
        one."""
        return self._running == 0 or (self._running_blind and blind)

    def _start(self, argv: list[bytes], route: Route | None, blind: bool) -> None:
        """Run the command up to its first wait; its reply is queued, or a task finishes it."""
        session = self.session
        assert session is not None
        work = self._commands.begin(route, session, argv)
        if isinstance(work, ErrorReply):
            value: Any = work
        else:
            try:
                pending = work.send(None)
            except StopIteration as finished:
                value = finished.value
            except (ErrorReply, SwarmError) as exc:
                value = self._commands.failed(exc)
            except Exception as exc:
                value = self._internal(argv, exc)
            else:
                if self._running == 0:
                    self._running_blind = True
                self._running += 1
                self._running_blind = self._running_blind and blind
                task = self._loop.create_task(self._finish(argv, work, pending))
                task.add_done_callback(self._task_done)
                self._replies.append(task)
                return
        self._reply(self._encode(value))

    async def _finish(
        self, argv: list[bytes], coroutine: Coroutine[Any, Any, Any], pending: Any
    ) -> bytes:
        try:
            value = await resume(coroutine, pending)
        except (ErrorReply, SwarmError) as exc:
            value = self._commands.failed(exc)
        except Exception as exc:
            value = self._internal(argv, exc)
        return self._encode(value)

    def _internal(self, argv: list[bytes], exc: Exception) -> ErrorReply:
        log.error("resp_command_failed command=%r", argv[0][:64], exc_info=exc)
        return ErrorReply(f"ERR internal error: {type(exc).__name__}: {exc}")

    def _encode(self, value: Any) -> bytes:
        session = self.session
        encoder = RESP3 if session is not None and session.resp3 else RESP2
        try:
            return encoder.encode(value)
        except (TypeError, ValueError) as exc:
            log.error("resp_unencodable_reply type=%s", type(value).__name__, exc_info=exc)
            return encoder.encode(ErrorReply(f"ERR internal error: unencodable reply: {exc}"))

    def _reply(self, data: bytes) -> None:
        if self._replies:
            self._replies.append(data)
        else:
            self._out.append(data)

    def _task_done(self, task: asyncio.Task[bytes]) -> None:
        self._running -= 1
        if self._lost:
            return
        self._collect()
        backlog = self._backlog
        while backlog and self._may_start(backlog[0][2]):
            self._start(*backlog.popleft())
            if self._closing:
                self._backlog.clear()
        self._collect()
        self._flush()

    def _collect(self) -> None:
        """Move finished replies at the head of the queue to the output, in order."""
        replies = self._replies
        while replies:
            head = replies[0]
            if isinstance(head, bytes):
                self._out.append(head)
            elif head.done():
                if head.cancelled():
                    replies.popleft()
                    continue
                self._out.append(head.result())
            else:
                break
            replies.popleft()

    def _flush(self) -> None:
        """Write what is ready in one call; then whether to read on (once per read, not per
        command: pausing matters only when the loop next polls)."""
        transport = self._transport
        out = self._out
        if out and transport is not None and not self._lost:
            self._out = []
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if self._replies or self._backlog:
            self._drained.clear()
        else:
            self._drained.set()
            if self._closing and transport is not None:
                transport.close()
        self._update_reading()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._lost:
            return
        want = (
            not self._closing
            and not self._write_paused
            and self.pending < self._limits.max_pending_per_conn
        )
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    # --- pub/sub, QUIT, errors, shutdown -----------------------------------------------------

    def _push(self, value: Any) -> None:
        """An out-of-band message (pub/sub), written at once ahead of pending replies."""
        transport = self._transport
        if transport is None or self._lost:
            return
        if transport.get_write_buffer_size() > self._limits.max_pubsub_output_bytes:
            self._server._slow_subscribers.inc()
            log.warning("resp_slow_subscriber_dropped conn=%s", self.session and self.session.id)
            transport.abort()
            return
        transport.write(self._encode(value))

    def _quit(self) -> None:
        """QUIT: answer what was asked before, then close."""
        self._closing = True
        self._backlog.clear()

    def _disconnect(self) -> None:
        """Close now, after what is already written."""
        self._closing = True
        self._backlog.clear()
        if self._transport is not None and not self._lost:
            self._transport.close()

    def _protocol_error(self, exc: ProtocolError) -> None:
        self._server._protocol_errors.inc()
        log.info("resp_protocol_error conn=%s error=%s", self.session and self.session.id, exc)
        self._backlog.clear()
        self._reply(self._encode(ErrorReply(f"ERR {exc}")))
        self._closing = True

    def shut_down(self) -> None:
        """The server is closing: read nothing more; what runs may still answer."""
        self._closing = True
        self._backlog.clear()
        self._update_reading()
        if not self._replies:
            self._flush()

    async def wait_drained(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)

    async def finish(self) -> None:
        """Drop the connection (after the grace period) and stop its notifications."""
        if self._transport is not None and not self._lost:
            self._transport.abort()
        for item in self._replies:
            if isinstance(item, asyncio.Task):
                item.cancel()
        if self.session is not None and self.session.subscriptions is not None:
            await self.session.subscriptions.close()
