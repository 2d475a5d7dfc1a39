"""The node's Unix-socket server: frames in, dispatched operations, replies out.

The server knows the protocol, not the operations: every well-formed request
goes to a `Dispatch` callable the node provides, and whatever it returns or
raises becomes the reply. The one op handled here is `cancel`, because it acts
on the connection's own streams.

Replies go out in completion order, so a slow request never holds up a fast
one behind it.

Each connection is an `asyncio.Protocol`: the transport calls `data_received`
with what it read, the frame decoder turns it into requests, and replies go
out through `transport.write`. There is no reader task per connection, and no
stream objects between the socket and the decoder.

Eager ops: most requests (a get, a search) finish without ever waiting, and for
them a task of their own plus a turn of the event loop cost more than the
operation. An op named in `eager_ops` therefore starts inside the read callback;
if it finishes there, its reply is written at once, and if it has to wait, the
rest of it continues in a task like any other request (the same thing Python
3.12's eager task factory does, which 3.11 lacks). Until its first wait such an
op runs outside any task of its own (in the read callback, or in the task
whose end freed the slot it waited for), so it must not enter
`asyncio.timeout()`, call `asyncio.current_task()` or set a context variable
before then: those would act on somebody else's task, or on none.

Back-pressure. Each connection runs at most `max_inflight_per_conn` requests at
once. A request read when that many are running waits, with every frame read
after it, and the server stops reading the socket (`pause_reading`) until a slot
frees; so a client that pipelines faster than the node works is slowed by the
kernel's socket buffer rather than by the node's memory. Replies are written
straight to the transport. A request running in a task waits, after writing its
reply, while the transport holds more unsent bytes than its high-water mark,
and only then frees its slot; a reply written from the read callback (an eager
op that finished at once, an error) that finds the transport over that mark
holds the connection: nothing more is started or read until it drains. So a
client that stops reading replies stops being read as well, while a stream
waiting for its client to catch up does not stop the client's `cancel` from
being read.

Streams: when dispatch returns an `AsyncIterator`, the reply is
`{"stream": true}` and every item becomes an event frame `{"id", "event"}`.
A stream ends with exactly one `{"id", "end": true}` frame (carrying an
`"error"` map when the iterator raised, or `unavailable` when the node shuts
down) unless the connection is gone. `{"op": "cancel", "args": {"id": n}}` ends
stream n and replies `{"cancelled": bool}`. A stream frees its in-flight slot
once it has started; `max_streams_per_conn` bounds them instead. The
iterator is closed (`aclose`) however the stream ends, including when the
client disconnects.

Socket safety is `api/unixsock.py`'s: a private directory, mode 0600, a lock file
against a second server.

Hostile or broken clients. Whatever a client sends, what it can make the node hold is
bounded: one read chunk (with the frames decoded from it) and the frame being received
per connection, at most `max_connections` connections, and every partial frame counted,
by the length its header declares, against `max_buffered_bytes` for all connections
together (a header that would go past it closes its connection). A frame must arrive whole within
`frame_timeout` of the server starting to read it, so a client that stalls mid-frame is
cut off and its buffer freed. An error reply never quotes more than `MAX_ERROR_MESSAGE`
bytes of anything, so a reply cannot outgrow the request that caused it. Every refusal
is counted in the node's metrics (`swarmnode_api_*`).

There is no idle timeout and no authentication step: the socket's directory and mode
admit only processes of the node's own user, which could as well signal the node
itself, so a connection is not a trust boundary the way a network peer is. An idle
connection holds no buffer, only its slot among `max_connections` (agents keep
connections open between calls and for `watch` streams, so cutting idle ones would
break well-behaved clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from swarmnode.api.eager import resume
from swarmnode.api.framing import (
    HEADER_SIZE,
    MAX_ERROR_MESSAGE,
    BadFrame,
    FrameTooLarge,
    Request,
    RequestDecoder,
    RequestEvent,
    encode_end,
    encode_error,
    encode_event,
    encode_result,
)
from swarmnode.api.limits import ApiLimits
from swarmnode.api.session import Session, peer_uid
from swarmnode.api.unixsock import (
    SUN_PATH_MAX,
    ApiSocketError,
    acquire_lock,
    bind_unix,
    prepare_directory,
)
from swarmnode.errors import SwarmError
from swarmnode.metrics import Registry

log = logging.getLogger("swarmnode.api")


class RequestContext(NamedTuple):
    """What dispatch knows about a request besides its op and arguments. One is made per
    request: a named tuple, immutable like a frozen dataclass at a third of its cost to
    build."""

    connection_id: int
    request_id: int
    limits: ApiLimits
    session: Session | None = None
    """The connection's identity (`hello`), shared by its requests; None: no session."""
    internal: bool = False
    """A front end reading for itself, not for a client (the RESP key map's namespace
    list): the administrator, whatever tokens require."""


Dispatch = Callable[[str, dict[str, Any], RequestContext], Awaitable[Any]]
"""The node's operations: `(op, args, ctx) -> result`, or an `AsyncIterator` for a stream.
A `SwarmError` becomes an error reply with its code; any other exception is a bug and
becomes `internal`."""


class ApiServer:
    def __init__(
        self,
        socket_path: Path,
        dispatch: Dispatch,
        limits: ApiLimits | None = None,
        eager_ops: Collection[str] = (),
        *,
        metrics: Registry | None = None,
    ) -> None:
        self._path = Path(socket_path)
        self._dispatch = dispatch
        self._limits = limits or ApiLimits()
        self.eager_ops = frozenset(eager_ops)
        """Ops started inside the read callback (the module docstring says what rule they obey)."""
        self._server: asyncio.AbstractServer | None = None
        self._lock_fd: int | None = None
        self._inode: int | None = None
        self._closing = False
        self._connections: set[_Connection] = set()
        self._connection_ids = itertools.count(1)
        self.buffered_bytes = 0
        """Bytes reserved now for partial request frames, over all connections."""
        self.buffered_bytes_peak = 0
        self._metrics = metrics if metrics is not None else Registry()
        self._declare_metrics(self._metrics)

    def _declare_metrics(self, m: Registry) -> None:
        def counter(key: str, name: str, help: str) -> Any:
            return m.counter(f"swarmnode_api_{name}_total", help, stats=("api", key))

        self._connections_total = counter(
            "connections_total", "connections", "Client connections accepted."
        )
        self._connections_refused = counter(
            "connections_refused",
            "connections_refused",
            "Client connections refused: max_connections reached, or shutting down.",
        )
        self._requests = counter(
            "requests", "requests", "Well-formed request frames read from clients."
        )
        self._bad_frames = counter(
            "bad_frames",
            "bad_frames",
            "Frames answered bad_request by the framing layer (not msgpack, not a request).",
        )
        self._oversized = counter(
            "oversized_frames",
            "oversized_frames",
            "Connections closed for a frame header declaring more than max_frame.",
        )
        self._truncated = counter(
            "truncated_frames",
            "truncated_frames",
            "Connections that ended in the middle of a frame.",
        )
        self._timed_out = counter(
            "frames_timed_out",
            "frames_timed_out",
            "Connections cut off for a frame not complete within frame_timeout.",
        )
        self._over_budget = counter(
            "frames_refused_buffer_cap",
            "frames_refused_buffer_cap",
            "Connections closed because their next frame would take the bytes buffered for "
            "partial frames past max_buffered_bytes.",
        )
        self._messages_cut = counter(
            "error_messages_cut",
            "error_messages_cut",
            f"Error replies whose message was cut to {MAX_ERROR_MESSAGE} bytes.",
        )
        self._errors = m.counter(
            "swarmnode_api_errors_total",
            "Error replies sent (stream ends included), by error code.",
            labels=("code",),
            stats=("api", "errors", "{code}"),
        )
        connections = self._connections
        m.gauge(
            "swarmnode_api_connections_open",
            "Client connections open now.",
            fn=lambda: len(connections),
            stats=("api", "connections_open"),
        )
        m.gauge(
            "swarmnode_api_requests_inflight",
            "Requests running now (streams not included).",
            fn=lambda: sum(c.inflight for c in connections),
            stats=("api", "inflight"),
        )
        m.gauge(
            "swarmnode_api_streams_open",
            "Streams (watch) open now.",
            fn=lambda: sum(c.streams_open for c in connections),
            stats=("api", "streams_open"),
        )
        m.gauge(
            "swarmnode_api_buffered_bytes",
            "Bytes reserved now for partial request frames, over all connections.",
            fn=lambda: self.buffered_bytes,
            stats=("api", "buffered_bytes"),
        )
        m.gauge(
            "swarmnode_api_buffered_peak_bytes",
            "Highest buffered_bytes since start.",
            fn=lambda: self.buffered_bytes_peak,
            stats=("api", "buffered_bytes_peak"),
        )

    @property
    def socket_path(self) -> Path:
        return self._path

    @property
    def limits(self) -> ApiLimits:
        return self._limits

    async def start(self) -> None:
        if self._server is not None or self._closing:
            raise RuntimeError("ApiServer.start() called twice")
        path = self._path
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise ApiSocketError(
                f"socket path {path} is longer than the {SUN_PATH_MAX} bytes a Unix socket "
                "address can hold; choose a shorter --socket or data directory"
            )
        prepare_directory(path.parent)
        self._lock_fd = acquire_lock(path)
        try:
            sock = bind_unix(path, self._limits.listen_backlog)
            self._inode = os.stat(path).st_ino
            self._server = await asyncio.get_running_loop().create_unix_server(
                lambda: _Connection(self), sock=sock, backlog=self._limits.listen_backlog
            )
        except BaseException:
            if self._inode is not None:
                self._unlink_socket()
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        log.info("api_listening path=%s", path)

    async def close(self) -> None:
        """Stop accepting, let in-flight requests finish within `close_grace`, then cancel.

        Streams end at once with `unavailable`. A second call returns immediately.
        """
        if self._server is None or self._closing:
            return
        self._closing = True
        self._server.close()
        self._unlink_socket()
        connections = list(self._connections)
        for connection in connections:
            connection.shut_down()
        running = [c.finished for c in connections if not c.finished.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=self._limits.close_grace)
            if late:
                for connection in connections:
                    if not connection.finished.done():
                        connection.abort()
                await asyncio.wait(late)
        await self._server.wait_closed()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("api_closed path=%s", self._path)

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> dict[str, Any]:
        """The `api` section of the node's `stats`, rendered from the registry.

        `requests` counts well-formed requests, `errors` error replies by code,
        `bad_frames` frames answered with `bad_request` at the framing layer,
        `oversized_frames` connections closed for a too-large length,
        `truncated_frames` connections that ended in the middle of a frame,
        `frames_timed_out` and `frames_refused_buffer_cap` connections cut off by
        `frame_timeout` and `max_buffered_bytes`.
        """
        return self._metrics.snapshot("api")

    def _count_error(self, code: str, message: str) -> None:
        """One error reply; its message is cut by the framing if over MAX_ERROR_MESSAGE."""
        self._errors.labels(code).inc()
        if len(message) > MAX_ERROR_MESSAGE // 4 and (
            len(message.encode("utf-8", "surrogatepass")) > MAX_ERROR_MESSAGE
        ):
            self._messages_cut.inc()

    def reserve(self, more: int) -> bool:
        """Take `more` bytes of the partial-frame budget (negative gives back); False, and
        nothing taken, if that would pass `max_buffered_bytes`."""
        total = self.buffered_bytes + more
        if more > 0 and total > self._limits.max_buffered_bytes:
            return False
        self.buffered_bytes = total
        self.buffered_bytes_peak = max(self.buffered_bytes_peak, total)
        return True

    def _unlink_socket(self) -> None:
        """Remove the socket file, unless someone already replaced it with their own."""
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self._path).st_ino == self._inode:
                os.unlink(self._path)


class _Connection(asyncio.Protocol):
    """One client: its frame decoder, the requests it has running, its open streams."""

    def __init__(self, server: ApiServer) -> None:
        self._server = server
        self._limits = server.limits
        self._dispatch = server._dispatch
        self._eager_ops = server.eager_ops
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._decoder = RequestDecoder(self._limits.max_frame)
        self.id = 0
        self.session: Session | None = None
        self.finished: asyncio.Future[None] = self._loop.create_future()
        """Done once the connection has stopped reading, has nothing left to run and is
        closed: what `ApiServer.close` waits for."""
        self._open = False
        """Reading requests: from `connection_made` until EOF, loss, shutdown or refusal."""
        self._reading = True
        """Whether the transport reads (not paused)."""
        self._write_paused = False
        """The transport holds more unsent bytes than its high-water mark."""
        self._held = False
        """A reply written here (not by a task) found the transport paused: act on nothing
        more until it drains, as the read loop of a stream-based server would have waited."""
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._lost = False
        self._running = 0
        """Requests holding an in-flight slot."""
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._streams: dict[int, str | None] = {}
        """Open streams by id, with why they are being stopped (None while they run)."""
        self._stop_reason: str | None = None
        """Why the connection stopped taking streams: "disconnect" or "shutdown"."""
        self._backlog: deque[RequestEvent] = deque()
        """Frames read but not acted on yet: slots were full, or the client stopped reading."""
        self._timer: asyncio.TimerHandle | None = None
        """Cuts the connection off when the frame under way is not whole in time."""
        self._reserved = 0
        """Bytes of the server's partial-frame budget this connection holds."""

    @property
    def inflight(self) -> int:
        return self._running

    @property
    def streams_open(self) -> int:
        return len(self._streams)

    # --- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        server = self._server
        if server._closing or len(server._connections) >= self._limits.max_connections:
            server._connections_refused.inc()
            log.warning("api_connection_refused open=%d", len(server._connections))
            reason = "node is shutting down" if server._closing else "too many connections"
            server._count_error("unavailable", reason)
            self._write(encode_error(None, "unavailable", reason))
            transport.close()
            self.finished.set_result(None)
            return
        self.id = next(server._connection_ids)
        self.session = Session(peer_uid(transport.get_extra_info("socket")))
        self._open = True
        server._connections.add(self)
        server._connections_total.inc()
        log.debug("api_connection_open conn=%d", self.id)

    def data_received(self, data: bytes) -> None:
        if not self._open:
            return
        decoder = self._decoder
        events = decoder.feed(data)
        if events:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._take(events)
        if decoder.spent:
            self._end_reading()
        elif not self._reserve(decoder.pending_frame):
            self._refuse_frame()
        self._update_reading()

    def eof_received(self) -> bool:
        """The client sent everything it will: answer what runs, then close."""
        if self._open and self._decoder.buffered:
            self._server._truncated.inc()
            log.info("api_truncated_frame conn=%d bytes=%d", self.id, self._decoder.buffered)
        self._end_reading()
        return True

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._held = False
        self._wake_senders()
        self._run_backlog()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._backlog.clear()
        self._end_reading()
        self._wake_senders()
        self._maybe_finish()

    # --- reading -------------------------------------------------------------------------

    def _take(self, events: list[RequestEvent]) -> None:
        """Act on frames in order; the first that cannot start now waits with all after it."""
        for index, event in enumerate(events):
            if self._must_wait(event):
                self._backlog.extend(events[index:])
                return
            self._act(event)

    def _must_wait(self, event: RequestEvent) -> bool:
        """Whether acting on `event` now would pass a bound: the client is not reading its
        replies, or the request needs an in-flight slot and none is free."""
        if self._held:
            return True
        return (
            self._running >= self._limits.max_inflight_per_conn
            and type(event) is Request
            and event.op != "cancel"
            and event.id not in self._tasks
        )

    def _run_backlog(self) -> None:
        backlog = self._backlog
        while backlog and not self._must_wait(backlog[0]):
            self._act(backlog.popleft())
        self._update_reading()
        self._maybe_finish()

    def _update_reading(self) -> None:
        """Read while open, with no frame waiting and the client taking its replies; the
        frame timeout runs only while reading, so time spent not reading never counts."""
        want = self._open and not self._held and not self._backlog
        transport = self._transport
        if want != self._reading and transport is not None and not transport.is_closing():
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()
        if want and self._decoder.buffered:
            if self._timer is None:
                self._timer = self._loop.call_later(
                    self._limits.frame_timeout, self._frame_timed_out
                )
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end_reading(self) -> None:
        """Read nothing more: give back the buffer budget, end the streams; the connection
        closes once what it runs has finished."""
        if not self._open:
            return
        self._open = False
        self._server.reserve(-self._reserved)
        self._reserved = 0
        self._stop_streams("disconnect")
        self._update_reading()
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self._open or self._backlog or self._tasks or self.finished.done():
            return
        if self._transport is not None:
            self._transport.close()
        self._server._connections.discard(self)
        self.finished.set_result(None)
        log.debug("api_connection_closed conn=%d", self.id)

    def shut_down(self) -> None:
        """Stop reading and end streams; running requests may still finish and reply."""
        self._backlog.clear()
        self._stop_streams("shutdown")
        self._end_reading()

    def abort(self) -> None:
        """Cancel whatever still runs and drop the connection (grace over, or a stalled frame)."""
        self._backlog.clear()
        self._end_reading()
        for task in self._tasks.values():
            task.cancel()
        if self._transport is not None:
            self._transport.abort()
        self._maybe_finish()

    def _stop_streams(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        for stream_id, stopping in self._streams.items():
            if stopping is None:
                self._streams[stream_id] = reason
                self._tasks[stream_id].cancel()

    def _reserve(self, wanted: int) -> bool:
        """Hold `wanted` bytes of the server's budget for the frame now arriving."""
        if wanted == self._reserved:
            return True
        if not self._server.reserve(wanted - self._reserved):
            return False
        self._reserved = wanted
        return True

    def _refuse_frame(self) -> None:
        server = self._server
        server._over_budget.inc()
        log.log(
            _flood_level(server._over_budget.value),
            "api_frame_refused conn=%d length=%d buffered=%d limit=%d",
            self.id,
            self._decoder.pending_frame,
            server.buffered_bytes,
            self._limits.max_buffered_bytes,
        )
        self._write(
            self._error_frame(
                None,
                "unavailable",
                f"the node already holds {server.buffered_bytes} bytes of partial frames; a "
                f"frame of {self._decoder.pending_frame} bytes would pass the "
                f"{self._limits.max_buffered_bytes}-byte limit; closing the connection",
            )
        )
        self._end_reading()

    def _frame_timed_out(self) -> None:
        """Cut a client that stalled mid-frame: tell it why if it still reads, then drop it."""
        self._timer = None
        self._server._timed_out.inc()
        log.log(
            _flood_level(self._server._timed_out.value),
            "api_frame_timed_out conn=%d buffered=%d frame=%d timeout=%g",
            self.id,
            self._decoder.buffered,
            self._decoder.pending_frame,
            self._limits.frame_timeout,
        )
        self._write(
            self._error_frame(
                None,
                "unavailable",
                f"frame not complete within {self._limits.frame_timeout:g}s; "
                "closing the connection",
            )
        )
        self.abort()

    # --- requests ------------------------------------------------------------------------

    def _act(self, event: RequestEvent) -> None:
        if type(event) is Request:
            self._start_request(event)
        elif isinstance(event, BadFrame):
            self._server._bad_frames.inc()
            log.info("api_bad_frame conn=%d id=%s reason=%r", self.id, event.id, event.reason)
            self._write(self._error_frame(event.id, "bad_request", event.reason))
        else:
            assert isinstance(event, FrameTooLarge)
            self._server._oversized.inc()
            log.info(
                "api_frame_too_large conn=%d length=%d limit=%d",
                self.id,
                event.length,
                event.limit,
            )
            self._write(
                self._error_frame(
                    None,
                    "too_large",
                    f"frame of {event.length} bytes exceeds the {event.limit}-byte limit; "
                    "closing the connection",
                )
            )

    def _start_request(self, request: Request) -> None:
        """Start a request (a slot is free). An eager op that finishes at once is answered
        here without a coroutine or task of its own (most gets)."""
        self._server._requests.inc()
        if request.id in self._tasks:
            self._write(
                self._error_frame(
                    request.id, "bad_request", f"request id {request.id} is already in flight"
                )
            )
        elif request.op == "cancel":
            self._cancel(request)
        elif request.op in self._eager_ops:
            self._start_eagerly(request)
        else:
            self._start_task(request, None)

    def _start_eagerly(self, request: Request) -> None:
        """Run the request up to its first wait here; only what has to wait gets a task."""
        context = RequestContext(self.id, request.id, self._limits, self.session)
        coroutine = self._dispatch(request.op, request.args, context)
        try:
            pending = coroutine.send(None)
        except StopIteration as finished:
            result = finished.value
            if type(result) is not dict and isinstance(result, AsyncIterator):
                self._start_task(request, _ready(result))
            else:
                self._write(self._result_frame(request.id, result))
            return
        except Exception as exc:
            self._write(self._failure_frame(request, exc))
            return
        self._start_task(request, resume(coroutine, pending))

    def _start_task(self, request: Request, started: Awaitable[Any] | None) -> None:
        self._running += 1
        self._tasks[request.id] = self._loop.create_task(self._run(request, started))

    def _failure_frame(self, request: Request, exc: Exception) -> bytes:
        """The reply to a request whose dispatch raised: its error code, or `internal` for
        a bug."""
        if isinstance(exc, SwarmError):
            return self._error_frame(request.id, exc.code, exc.message)
        log.error(
            "api_dispatch_failed conn=%d id=%d op=%s",
            self.id,
            request.id,
            request.op,
            exc_info=exc,
        )
        return self._error_frame(request.id, "internal", _describe(exc))

    def _cancel(self, request: Request) -> None:
        target = request.args.get("id")
        if type(target) is not int:
            self._write(self._error_frame(request.id, "bad_request", "cancel needs an int id"))
            return
        found = self._streams.get(target, "absent") is None
        if found:
            self._streams[target] = "cancelled"
            self._tasks[target].cancel()
        self._write(encode_result(request.id, {"cancelled": found}))

    async def _run(self, request: Request, started: Awaitable[Any] | None) -> None:
        """Run a request (or the rest of one started eagerly) and send its reply; the slot
        is freed once the reply is written and drained (for a stream, once it started)."""
        holds_slot = True
        try:
            if started is None:
                context = RequestContext(self.id, request.id, self._limits, self.session)
                started = self._dispatch(request.op, request.args, context)
            try:
                result = await started
            except Exception as exc:
                await self._send(self._failure_frame(request, exc))
                return
            if isinstance(result, AsyncIterator):
                holds_slot = False
                self._free_slot()
                await self._stream(request.id, result)
            else:
                await self._send(self._result_frame(request.id, result))
        except ConnectionError:
            log.debug("api_reply_lost conn=%d id=%d", self.id, request.id)
        finally:
            del self._tasks[request.id]
            if holds_slot:
                self._free_slot()
            else:
                self._maybe_finish()

    def _free_slot(self) -> None:
        self._running -= 1
        if self._backlog:
            self._run_backlog()
        else:
            self._maybe_finish()

    async def _stream(self, stream_id: int, items: AsyncIterator[Any]) -> None:
        if self._stop_reason is not None or len(self._streams) >= self._limits.max_streams_per_conn:
            await _close_iterator(items)
            if self._stop_reason == "disconnect":
                return
            if self._stop_reason == "shutdown":
                await self._send_error(stream_id, "unavailable", "node is shutting down")
            else:
                await self._send_error(
                    stream_id,
                    "too_large",
                    f"this connection already has {len(self._streams)} open streams",
                )
            return
        self._streams[stream_id] = None
        end: tuple[str, str] | None
        try:
            await self._send(encode_result(stream_id, {"stream": True}))
            end = await self._pump(stream_id, items)
        except asyncio.CancelledError:
            reason = self._streams[stream_id]
            if reason is None:
                raise
            current = asyncio.current_task()
            assert current is not None
            current.uncancel()
            if reason == "disconnect":
                return
            end = ("unavailable", "node is shutting down") if reason == "shutdown" else None
        finally:
            del self._streams[stream_id]
            await _close_iterator(items)
        await self._send(encode_end(stream_id, end))

    async def _pump(self, stream_id: int, items: AsyncIterator[Any]) -> tuple[str, str] | None:
        """Send events until the iterator ends; returns the error that ended it, if any."""
        while True:
            try:
                item = await anext(items)
            except StopAsyncIteration:
                return None
            except SwarmError as exc:
                self._server._count_error(exc.code, exc.message)
                return (exc.code, exc.message)
            except Exception as exc:
                log.exception("api_stream_failed conn=%d id=%d", self.id, stream_id)
                self._server._count_error("internal", _describe(exc))
                return ("internal", _describe(exc))
            await self._send(self._event_frame(stream_id, item))

    # --- replies -------------------------------------------------------------------------

    def _result_frame(self, request_id: int, result: Any) -> bytes:
        try:
            frame = encode_result(request_id, result)
        except Exception as exc:
            log.exception("api_unencodable_result conn=%d id=%d", self.id, request_id)
            return self._error_frame(request_id, "internal", f"unencodable result: {exc}")
        if len(frame) - HEADER_SIZE > self._limits.max_frame:
            return self._error_frame(
                request_id,
                "too_large",
                f"reply of {len(frame) - HEADER_SIZE} bytes exceeds the "
                f"{self._limits.max_frame}-byte frame limit",
            )
        return frame

    def _event_frame(self, stream_id: int, item: Any) -> bytes:
        try:
            frame = encode_event(stream_id, item)
        except Exception as exc:
            log.exception("api_unencodable_event conn=%d id=%d", self.id, stream_id)
            return self._error_frame(stream_id, "internal", f"unencodable event: {exc}")
        if len(frame) - HEADER_SIZE > self._limits.max_frame:
            return self._error_frame(stream_id, "too_large", "event exceeds the frame limit")
        return frame

    def _error_frame(self, request_id: int | None, code: str, message: str) -> bytes:
        self._server._count_error(code, message)
        return encode_error(request_id, code, message)

    def _write(self, frame: bytes) -> None:
        """Write a reply made outside any request's task; if the client is not reading its
        replies, hold the connection until it does (nothing is sent once it is closing)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(frame)
        if self._write_paused:
            self._held = True

    async def _send_error(self, request_id: int | None, code: str, message: str) -> None:
        await self._send(self._error_frame(request_id, code, message))

    async def _send(self, frame: bytes) -> None:
        """Write `frame` from a task, then wait while the client is not reading replies."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection is closing")
        transport.write(frame)
        if self._write_paused:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
            if self._lost:
                raise ConnectionResetError("connection lost")

    def _wake_senders(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


async def _ready(value: Any) -> Any:
    return value


async def _close_iterator(items: AsyncIterator[Any]) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.exception("api_stream_close_failed")


def _flood_level(count: float) -> int:
    """WARNING for the 1st, 2nd, 4th, 8th... refusal of a kind, DEBUG for the others: a
    flood of hostile clients is visible in the log without flooding it."""
    n = int(count)
    return logging.WARNING if n & (n - 1) == 0 else logging.DEBUG


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
