"""The blocking client: plain sockets, one request at a time, safe to share between threads.

A lock serialises calls on the one connection, so threads sharing a `Client`
take turns; give each busy thread its own client, or use `AsyncClient` to
pipeline. The connection is opened on first use (or by `connect()`); when it is
lost, the call in progress raises `Unavailable` and the next call reconnects.

Timeouts: `timeout=None` (the default) waits as long as the node takes,
because a slow durable write or compaction is not a failure, and a caller that
gives up cannot know whether the operation happened. With a timeout in
seconds, a call that gets no reply in time raises `Unavailable` (the
operation may still take effect; a late reply is recognised by its id and
dropped). A `watch` waits for events without any timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
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
    no_reply,
    not_a_stream,
    outcome,
    reply_frames,
    unreachable,
    watch_args,
)
from swarmnode.client.operations import Operations
from swarmnode.errors import Unavailable, error_from_wire
from swarmnode.paths import default_socket_path

_READ_CHUNK = 64 * 1024


class _Link:
    """One connection: whole frames out, server frames in."""

    def __init__(self, path: Path, max_frame: int, timeout: float | None) -> None:
        self.path = path
        self._decoder = FrameDecoder(max_frame)
        self._ready: deque[ServerFrame] = deque()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._timeout = timeout
        try:
            self._sock.connect(os.fspath(path))
        except OSError as exc:
            self._sock.close()
            raise unreachable(path, exc) from exc

    def send(self, frame: bytes, deadline: float | None) -> None:
        """Send a whole frame; a timeout leaves part of it sent, so the caller must close."""
        self._set_timeout(_remaining(deadline))
        try:
            self._sock.sendall(frame)
        except TimeoutError as exc:
            raise connection_lost(self.path, "timed out while sending") from exc
        except OSError as exc:
            raise connection_lost(self.path, exc.strerror or str(exc)) from exc

    def _set_timeout(self, timeout: float | None) -> None:
        # Switching a socket between blocking and timed modes costs fcntl calls;
        # without a deadline every request would pay them twice for nothing.
        if timeout is None and self._timeout is None:
            return
        self._sock.settimeout(timeout)
        self._timeout = timeout

    def send_if_room(self, frame: bytes) -> None:
        """Best-effort send that never waits: for a last word before closing."""
        self._timeout = 0.0
        self._sock.setblocking(False)
        with contextlib.suppress(OSError):
            self._sock.send(frame)

    def receive(self, deadline: float | None) -> ServerFrame:
        """The next frame from the server; `TimeoutError` when the deadline passes."""
        while not self._ready:
            self._set_timeout(_remaining(deadline))
            try:
                data = self._sock.recv(_READ_CHUNK)
            except TimeoutError:
                raise  # a TimeoutError is an OSError, but the connection is still sound
            except OSError as exc:
                raise connection_lost(self.path, exc.strerror or str(exc)) from exc
            if not data:
                raise connection_lost(self.path, "the node closed the connection")
            self._ready.extend(reply_frames(self._decoder, data, self.path))
        return self._ready.popleft()

    def close(self) -> None:
        self._sock.close()


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _await_reply(link: _Link, request_id: int, deadline: float | None) -> Reply | ErrorReply:
    """Read until the reply to `request_id`; frames for other ids are stale and dropped.

    An error reply with id null concerns the whole connection (the node refused
    it, or closes it), so it is raised as the reply to whatever we wait for.
    """
    while True:
        frame = link.receive(deadline)
        if isinstance(frame, Reply | ErrorReply) and frame.id == request_id:
            return frame
        if isinstance(frame, ErrorReply) and frame.id is None:
            return frame


HELLO_ID = 0
"""The request id of the `hello` a connection starts with (calls count from 1)."""


def token_of(token: str | None) -> str | None:
    """The token to present: the one given, else `$SWARMNODE_TOKEN` (empty: none)."""
    return token or os.environ.get("SWARMNODE_TOKEN") or None


def _hello(link: _Link, token: str | None, timeout: float | None, path: Path) -> None:
    """Present `token` on a new connection; its refusal (`forbidden`) is raised."""
    if token is None:
        return
    deadline = _deadline(timeout)
    link.send(encode_request(HELLO_ID, "hello", {"token": token}), deadline)
    try:
        outcome(_await_reply(link, HELLO_ID, deadline))
    except TimeoutError as exc:
        assert timeout is not None
        raise no_reply(path, timeout) from exc


class Client(Operations[Any]):
    """A blocking client of the local node; usable as a context manager."""

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
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._next_id = 1

    def connect(self) -> Client:
        """Open the connection now rather than on the first call; raises `Unavailable`."""
        with self._lock:
            self._connected()
        return self

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, op: str, /, **args: Any) -> Any:
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            frame = encode_request(request_id, op, args)
            check_request_size(frame, self.max_frame)
            link = self._connected()
            deadline = _deadline(self.timeout)
            try:
                link.send(frame, deadline)
                reply = _await_reply(link, request_id, deadline)
            except TimeoutError as exc:
                assert self.timeout is not None
                raise no_reply(self.socket_path, self.timeout) from exc
            except BaseException:
                self._drop()
                raise
            if reply.id is None:
                self._drop()
            return outcome(reply)

    def stream(self, op: str, /, **args: Any) -> Watch:
        """Start a streaming op on a connection of its own; see `Watch`."""
        return Watch(self.socket_path, self.max_frame, self.timeout, op, args, self.token)

    def watch(self, ns: str | None = None, prefix: str | None = None) -> Watch:
        """Changes to entries (of `ns`, under `prefix`) as they happen, until closed."""
        return self.stream("watch", **watch_args(ns, prefix))

    def _connected(self) -> _Link:
        if self._link is None:
            link = _Link(self.socket_path, self.max_frame, self.timeout)
            try:
                _hello(link, self.token, self.timeout, self.socket_path)
            except BaseException:
                link.close()
                raise
            self._link = link
        return self._link

    def _drop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


class Watch(Iterator[Any]):
    """The events of one stream, read from a private connection.

    Creating it sends the request and waits (within the client's timeout) for
    the stream to start, so a bad request raises at once. Iteration blocks until
    the next event and stops when the node ends the stream; a stream that failed
    raises its typed error. `close()` (or leaving a `with` block) sends `cancel`
    and closes the connection, which also makes the node close its iterator.
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
        frame = encode_request(self._STREAM_ID, op, args)
        check_request_size(frame, max_frame)
        self._link: _Link | None = _Link(socket_path, max_frame, timeout)
        try:
            _hello(self._link, token, timeout, socket_path)
            deadline = _deadline(timeout)
            self._link.send(frame, deadline)
            try:
                result = outcome(_await_reply(self._link, self._STREAM_ID, deadline))
            except TimeoutError as exc:
                assert timeout is not None
                raise no_reply(socket_path, timeout) from exc
            if result != {"stream": True}:
                raise not_a_stream(op)
        except BaseException:
            self._finish()
            raise

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> Any:
        while self._link is not None:
            link = self._link
            try:
                frame = link.receive(None)
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
        raise StopIteration

    def close(self) -> None:
        """Cancel the stream and close its connection; safe to call more than once."""
        if self._link is None:
            return
        self._link.send_if_room(
            encode_request(self._STREAM_ID + 1, "cancel", {"id": self._STREAM_ID})
        )
        self._finish()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _finish(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
