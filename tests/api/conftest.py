"""A real `ApiServer` on a real Unix socket, driven by a small dispatcher written for the tests."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from swarmnode.api.framing import Frame, FrameDecoder, encode_frame
from swarmnode.api.limits import ApiLimits
from swarmnode.api.server import ApiServer, RequestContext
from swarmnode.errors import error_from_wire


class ScriptedDispatcher:
    """Ops the tests steer: gates that hold requests, streams that record being closed."""

    def __init__(self) -> None:
        self._gates: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.started: list[str] = []
        self.streams_closed = 0
        self._closed_changed: asyncio.Condition | None = None

    def open_gate(self, name: str) -> None:
        self._gates[name].set()

    async def __call__(self, op: str, args: dict[str, Any], ctx: RequestContext) -> Any:
        self.started.append(op)
        if op == "echo":
            return args
        if op == "wait":
            await self._gates[args["gate"]].wait()
            return args.get("value")
        if op == "open":
            self._gates[args["gate"]].set()
            return True
        if op == "fail":
            raise error_from_wire(args["code"], args["message"])
        if op == "crash":
            raise RuntimeError("dispatcher bug")
        if op == "unencodable":
            return object()
        if op == "big":
            return b"x" * args["size"]
        if op == "context":
            return {"connection": ctx.connection_id, "request": ctx.request_id}
        if op == "count":
            return self._count(args["n"])
        if op == "idle_stream":
            return self._idle_stream()
        if op == "flood":
            return self._flood()
        if op == "broken_stream":
            return self._broken_stream()
        if op == "streams_closed":
            await self._wait_closed(args["at_least"])
            return self.streams_closed
        return {"op": op, "args": args}

    async def _count(self, n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                yield i
        finally:
            await self._note_closed()

    async def _idle_stream(self) -> AsyncIterator[str]:
        """One event, then nothing until cancelled: the iterator is parked in an await."""
        try:
            yield "first"
            await asyncio.Event().wait()
        finally:
            await self._note_closed()

    async def _flood(self) -> AsyncIterator[int]:
        """Events as fast as the client takes them: the iterator is parked at a yield."""
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            await self._note_closed()

    async def _broken_stream(self) -> AsyncIterator[int]:
        try:
            yield 1
            raise error_from_wire("conflict", "stream lost a race")
        finally:
            await self._note_closed()

    def _condition(self) -> asyncio.Condition:
        if self._closed_changed is None:
            self._closed_changed = asyncio.Condition()
        return self._closed_changed

    async def _note_closed(self) -> None:
        async with self._condition():
            self.streams_closed += 1
            self._condition().notify_all()

    async def _wait_closed(self, at_least: int) -> None:
        async with self._condition():
            await self._condition().wait_for(lambda: self.streams_closed >= at_least)


SCRIPTED_OPS = frozenset(
    {
        "echo", "wait", "open", "fail", "crash", "unencodable", "big", "context", "count",
        "idle_stream", "flood", "broken_stream", "streams_closed",
    }
)  # fmt: skip


@pytest.fixture(params=["tasks", "eager"])
def eager_ops(request: pytest.FixtureRequest) -> frozenset[str]:
    """Every server test runs twice: each request in a task, and every op started eagerly."""
    return SCRIPTED_OPS if request.param == "eager" else frozenset()


class RawConnection:
    """A client that speaks bytes, to send what a well-behaved client never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._decoder = FrameDecoder()
        self._frames: list[Any] = []

    @classmethod
    async def open(cls, path: Path) -> RawConnection:
        reader, writer = await asyncio.open_unix_connection(str(path))
        return cls(reader, writer)

    async def send(self, value: Any) -> None:
        await self.send_bytes(encode_frame(value))

    async def request(self, request_id: int, op: str, **args: Any) -> None:
        await self.send({"id": request_id, "op": op, "args": args})

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _fill(self) -> bool:
        """Read what the server sent; False once it has closed the connection."""
        try:
            data = await self.reader.read(65536)
        except ConnectionResetError:
            return False
        for event in self._decoder.feed(data):
            assert isinstance(event, Frame), event
            self._frames.append(event.value)
        return bool(data)

    async def frame(self) -> Any:
        """The next frame from the server; fails the test if the server closes instead."""
        while not self._frames:
            assert await self._fill(), "server closed the connection"
        return self._frames.pop(0)

    async def rest(self) -> list[Any]:
        """Every frame still to come, once the server has closed the connection."""
        while await self._fill():
            pass
        frames, self._frames = self._frames, []
        return frames

    async def closed_by_server(self) -> bool:
        """True when the server closes the connection with nothing more to say."""
        return await self.rest() == []

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short private directory: Unix socket paths must fit in 107 bytes."""
    directory = Path(tempfile.mkdtemp(prefix="sn-api-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def socket_path(socket_dir: Path) -> Path:
    return socket_dir / "run" / "api.sock"


@pytest.fixture
def dispatcher() -> ScriptedDispatcher:
    return ScriptedDispatcher()


@pytest.fixture
def limits() -> ApiLimits:
    return ApiLimits(close_grace=0.1)


@pytest.fixture
async def server(
    socket_path: Path, dispatcher: ScriptedDispatcher, limits: ApiLimits, eager_ops: frozenset[str]
) -> AsyncIterator[ApiServer]:
    api = ApiServer(socket_path, dispatcher, limits, eager_ops)
    await api.start()
    yield api
    await api.close()


class ThreadedServer:
    """An `ApiServer` on a uvloop loop in its own thread, for the blocking client."""

    def __init__(
        self,
        socket_path: Path,
        dispatcher: ScriptedDispatcher,
        limits: ApiLimits,
        eager_ops: frozenset[str] = frozenset(),
    ) -> None:
        self.loop = uvloop.new_event_loop()
        self.api = ApiServer(socket_path, dispatcher, limits, eager_ops)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.run(self.api.start())

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.run(self.api.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@pytest.fixture
def start_threaded_server(
    socket_path: Path, dispatcher: ScriptedDispatcher, eager_ops: frozenset[str]
) -> Iterator[Callable[[ApiLimits], ThreadedServer]]:
    """Start servers in threads (one at a time on the path); all are stopped after the test."""
    started: list[ThreadedServer] = []

    def start(limits: ApiLimits) -> ThreadedServer:
        threaded = ThreadedServer(socket_path, dispatcher, limits, eager_ops)
        threaded.start()
        started.append(threaded)
        return threaded

    yield start
    for threaded in started:
        threaded.stop()


@pytest.fixture
def threaded_server(
    start_threaded_server: Callable[[ApiLimits], ThreadedServer], limits: ApiLimits
) -> ThreadedServer:
    return start_threaded_server(limits)


@pytest.fixture
async def open_raw(socket_path: Path) -> AsyncIterator[Any]:
    """Open raw byte-level connections to the socket; all are closed after the test."""
    opened: list[RawConnection] = []

    async def open_connection() -> RawConnection:
        connection = await RawConnection.open(socket_path)
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        connection.writer.close()
