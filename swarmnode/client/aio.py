"""The asyncio client: many calls in flight on one connection, matched to replies by id.

Calls from any number of tasks share one connection; each gets its own id and
a future that a single reader task completes when the reply arrives, in
whatever order the node finishes them. The connection is opened on first use
(or by `connect()`); when it is lost, every call in flight raises
`Unavailable` and the next call reconnects.

With `timeout` set, a call that gets no reply in time raises `Unavailable`
(the operation may still take effect; the late reply is dropped) while the
connection and the other calls carry on. Cancelling the awaiting task has the
same effect. A `watch` uses a connection of its own, so a slow consumer of
events holds back only its own stream, through the socket, and never the
replies to other calls.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections import deque
from collections.abc import Awaitable
from pathlib import Path
from types import TracebackType
from typing import Any

from swarmnode.api.framing import (
    DEFAULT_MAX_FRAME,
    ErrorReply,
    FrameDecoder,
    Reply,
    ServerFrame,
    StreamEnd,
    StreamEvent,
    encode_request,
)
from swarmnode.client.base import (
    check_request_size,
    connection_lost,
    copy_error,
    no_reply,
    not_a_stream,
    outcome,
    reply_frames,
    unreachable,
    watch_args,
)
from swarmnode.client.blocking import HELLO_ID, token_of
from swarmnode.client.operations import Operations
from swarmnode.errors import SwarmError, Unavailable, error_from_wire
from swarmnode.paths import default_socket_path

_READ_CHUNK = 64 * 1024
_FIRST_CONNECT_PAUSE = 0.001
_LAST_CONNECT_PAUSE = 0.05


class _AsyncLink:
    """One connection: whole frames out, server frames in."""

    def __init__(
        self, path: Path, max_frame: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.path = path
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_frame)
        self._ready: deque[ServerFrame] = deque()

    @classmethod
    async def open(cls, path: Path, max_frame: int) -> _AsyncLink:
        try:
            sock = await _connect(path)
        except OSError as exc:
            raise unreachable(path, exc) from exc
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(path, max_frame, reader, writer)

    async def send(self, frame: bytes) -> None:
        if self._writer.is_closing():
            raise connection_lost(self.path, "the connection is closed")
        self._writer.write(frame)
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            raise connection_lost(self.path, str(exc)) from exc

    def send_if_room(self, frame: bytes) -> None:
        """Queue a last word before closing, without waiting for it to leave."""
        if not self._writer.is_closing():
            self._writer.write(frame)

    async def receive(self) -> ServerFrame:
        while not self._ready:
            try:
                data = await self._reader.read(_READ_CHUNK)
            except ConnectionError as exc:
                raise connection_lost(self.path, str(exc)) from exc
            if not data:
                raise connection_lost(self.path, "the node closed the connection")
            self._ready.extend(reply_frames(self._decoder, data, self.path))
        return self._ready.popleft()

    def close(self) -> None:
        self._writer.close()


async def _connect(path: Path) -> socket.socket:
    """Connect, waiting out a full accept queue.

    When a crowd of clients connects at once the node's accept queue fills and a
    non-blocking Unix connect fails with EAGAIN. asyncio's own connect then
    waits for the socket to become writable and hands back a socket that never
    connected, so the retry is done here: the same connect, after a short pause.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    pause = _FIRST_CONNECT_PAUSE
    try:
        while True:
            try:
                sock.connect(os.fspath(path))
            except BlockingIOError:
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LAST_CONNECT_PAUSE)
            else:
                return sock
    except BaseException:
        sock.close()
        raise


async def _hello(link: _AsyncLink, token: str | None) -> None:
    """Present `token` on a new connection; its refusal (`forbidden`) is raised."""
    if token is None:
        return
    await link.send(encode_request(HELLO_ID, "hello", {"token": token}))
    while True:
        frame = await link.receive()
        if isinstance(frame, Reply | ErrorReply) and frame.id in (HELLO_ID, None):
            outcome(frame)
            return


class AsyncClient(Operations[Awaitable[Any]]):
    """An asyncio client of the local node; usable as an async context manager.

    Every named operation is a coroutine: `await client.put("tasks", "t1", {...})`.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        token: str | None = None,
    ) -> None:
        """`token` (default `$SWARMNODE_TOKEN`) is presented with `hello` on every connection,
        which then speaks for its agent."""
        self.socket_path = Path(socket_path) if socket_path else default_socket_path()
        self.timeout = timeout
        self.max_frame = max_frame
        self.token = token_of(token)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._link: _AsyncLink | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()

    async def connect(self) -> AsyncClient:
        """Open the connection now rather than on the first call; raises `Unavailable`."""
        await self._connected()
        return self

    async def close(self) -> None:
        """Close the connection; calls still in flight raise `Unavailable`."""
        task = self._reader_task
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def call(self, op: str, /, **args: Any) -> Any:
        request_id = next(self._ids)
        frame = encode_request(request_id, op, args)
        check_request_size(frame, self.max_frame)
        link = await self._connected()
        reply = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        try:
            await link.send(frame)
            if self.timeout is None:
                return await reply
            try:
                return await asyncio.wait_for(reply, self.timeout)
            except TimeoutError as exc:
                raise no_reply(self.socket_path, self.timeout) from exc
        finally:
            self._pending.pop(request_id, None)

    def stream(self, op: str, /, **args: Any) -> AsyncWatch:
        """A streaming op on a connection of its own; see `AsyncWatch`."""
        return AsyncWatch(self.socket_path, self.max_frame, self.timeout, op, args, self.token)

    def watch(self, ns: str | None = None, prefix: str | None = None) -> AsyncWatch:
        """Changes to entries (of `ns`, under `prefix`) as they happen, until closed."""
        return self.stream("watch", **watch_args(ns, prefix))

    async def _connected(self) -> _AsyncLink:
        async with self._connect_lock:
            if self._link is None:
                try:
                    link = await asyncio.wait_for(
                        _AsyncLink.open(self.socket_path, self.max_frame), self.timeout
                    )
                except TimeoutError as exc:
                    raise unreachable(
                        self.socket_path, TimeoutError(f"no connection within {self.timeout:g}s")
                    ) from exc
                try:
                    await asyncio.wait_for(_hello(link, self.token), self.timeout)
                except TimeoutError as exc:
                    link.close()
                    assert self.timeout is not None
                    raise no_reply(self.socket_path, self.timeout) from exc
                except BaseException:
                    link.close()
                    raise
                self._link = link
                self._reader_task = asyncio.create_task(self._read_replies(link))
            return self._link

    async def _read_replies(self, link: _AsyncLink) -> None:
        error: SwarmError = connection_lost(self.socket_path, "the client was closed")
        try:
            while True:
                frame = await link.receive()
                if not isinstance(frame, Reply | ErrorReply):
                    continue
                if frame.id is None:
                    if isinstance(frame, ErrorReply):
                        error = error_from_wire(frame.code, frame.message)
                        return
                    continue
                reply = self._pending.get(frame.id)
                if reply is None or reply.done():
                    continue
                try:
                    reply.set_result(outcome(frame))
                except SwarmError as exc:
                    reply.set_exception(exc)
        except Unavailable as exc:
            error = exc
        finally:
            link.close()
            self._link = None
            self._reader_task = None
            for reply in self._pending.values():
                if not reply.done():
                    reply.set_exception(copy_error(error))


class AsyncWatch:
    """The events of one stream, read from a private connection.

    `async with client.watch(...) as events: async for event in events: ...`
    starts the stream on entry (a bad request raises there) and cancels it on
    exit. Plain `async for` starts it on the first iteration; then call
    `aclose()` when leaving the loop early. Iteration stops when the node ends
    the stream; a stream that failed raises its typed error.
    """

    _STREAM_ID = 1

    def __init__(
        self,
        socket_path: Path,
        max_frame: int,
        timeout: float | None,
        op: str,
        args: dict[str, Any],
        token: str | None = None,
    ) -> None:
        self._token = token
        self._path = socket_path
        self._max_frame = max_frame
        self._timeout = timeout
        self._op = op
        self._args = args
        self._link: _AsyncLink | None = None
        self._done = False

    async def start(self) -> AsyncWatch:
        """Send the request and wait (within the client's timeout) for the stream to begin."""
        if self._link is not None or self._done:
            return self
        frame = encode_request(self._STREAM_ID, self._op, self._args)
        check_request_size(frame, self._max_frame)
        try:
            result = await asyncio.wait_for(self._begin(frame), self._timeout)
        except TimeoutError as exc:
            self._finish()
            assert self._timeout is not None
            raise no_reply(self._path, self._timeout) from exc
        except BaseException:
            self._finish()
            raise
        if result != {"stream": True}:
            self._finish()
            raise not_a_stream(self._op)
        return self

    async def _begin(self, request: bytes) -> Any:
        self._link = link = await _AsyncLink.open(self._path, self._max_frame)
        await _hello(link, self._token)
        await link.send(request)
        while True:
            frame = await link.receive()
            if isinstance(frame, Reply | ErrorReply) and frame.id in (self._STREAM_ID, None):
                return outcome(frame)

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> Any:
        await self.start()
        while self._link is not None:
            try:
                frame = await self._link.receive()
            except Unavailable:
                self._finish()
                raise
            if isinstance(frame, StreamEvent) and frame.id == self._STREAM_ID:
                return frame.item
            if isinstance(frame, StreamEnd) and frame.id == self._STREAM_ID:
                self._finish()
                if frame.error is not None:
                    raise error_from_wire(frame.error.code, frame.error.message)
            elif isinstance(frame, ErrorReply) and frame.id is None:
                self._finish()
                raise error_from_wire(frame.code, frame.message)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Cancel the stream and close its connection; safe to call more than once."""
        if self._link is not None:
            self._link.send_if_room(
                encode_request(self._STREAM_ID + 1, "cancel", {"id": self._STREAM_ID})
            )
        self._finish()

    async def __aenter__(self) -> AsyncWatch:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _finish(self) -> None:
        self._done = True
        if self._link is not None:
            self._link.close()
            self._link = None
