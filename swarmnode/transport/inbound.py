"""An inbound stream connection that reads only what it is asked for.

asyncio's StreamReader reads whatever the peer sends into its own buffer (64
KiB and more per connection) before the code has decided to trust anyone. This
protocol instead keeps the socket paused except while `read_exactly(n)` waits,
and then lets the transport receive straight into a buffer of exactly `n`
bytes. What the peer sends beyond that stays in the kernel's socket buffer,
and TCP flow control stops the peer. So an unauthenticated connection costs
the process the bytes of the frame header and hello it is asked for, and an
authenticated frame's body is read into one buffer sized (and reserved, see
admission.py) from its header, with no copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from swarmnode.sansio import Address

_SPILL_BYTES = 256
"""Room for bytes a transport delivers when no read is waiting for them (a loop may call
get_buffer once more before a pause takes effect); kept for the next read."""


class InboundStream(asyncio.BufferedProtocol):
    """One accepted connection; `on_open` is called once it is connected."""

    def __init__(self, on_open: Callable[[InboundStream], None]) -> None:
        self._on_open = on_open
        self._transport: asyncio.Transport | None = None
        self.peer: Address = ("?", 0)
        self._buffer = bytearray()
        self._filled = 0
        self._waiter: asyncio.Future[None] | None = None
        self._early = bytearray()
        self._spill = bytearray(_SPILL_BYTES)
        self._failure: BaseException | None = None
        self.aborted = False
        """Set when this node cut the connection, whose end is then already accounted for."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.pause_reading()
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (peer[0], peer[1])
        self._on_open(self)

    async def read_exactly(self, n: int) -> bytearray:
        """The next `n` bytes; IncompleteReadError at EOF, ConnectionError once closed."""
        if self._failure is not None:
            raise self._failure
        assert self._transport is not None and self._waiter is None and n > 0
        self._buffer = bytearray(n)
        self._filled = min(n, len(self._early))
        self._buffer[: self._filled] = self._early[: self._filled]
        del self._early[: self._filled]
        if self._filled < n:
            self._waiter = asyncio.get_running_loop().create_future()
            self._transport.resume_reading()
            try:
                await self._waiter
            finally:
                self._waiter = None
                if not self._transport.is_closing():
                    self._transport.pause_reading()
        buffer, self._buffer = self._buffer, bytearray()
        return buffer

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._waiter is None or self._filled >= len(self._buffer):
            return memoryview(self._spill)
        return memoryview(self._buffer)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._waiter is None or self._filled >= len(self._buffer):
            self._early += self._spill[:nbytes]
            assert self._transport is not None
            self._transport.pause_reading()
            return
        self._filled += nbytes
        if self._filled == len(self._buffer):
            assert self._transport is not None
            self._transport.pause_reading()
            if not self._waiter.done():
                self._waiter.set_result(None)

    def eof_received(self) -> bool:
        self._fail(asyncio.IncompleteReadError(bytes(self._buffer[: self._filled]), None))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._fail(ConnectionResetError(f"connection lost: {exc}"))
        else:
            self._fail(asyncio.IncompleteReadError(bytes(self._buffer[: self._filled]), None))

    def _fail(self, failure: BaseException) -> None:
        if self._failure is None:
            self._failure = failure
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self._failure)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def abort(self) -> None:
        """Close at once, discarding anything unsent (used for refused or shed peers)."""
        self.aborted = True
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Close after flushing what was written (the last ACK)."""
        if self._transport is not None:
            self._transport.close()
