"""Bounds on what clients can make the node hold or do: the `[api]` section."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.api.framing import DEFAULT_MAX_FRAME
from swarmnode.settings import check_settings, refuse, setting

MIN_FRAME = 512
"""Below this even a `stats` or `members` reply of a small node does not fit a frame."""
MAX_FRAME = (1 << 32) - 1
"""The frame header is a 4-byte length."""


@dataclass(frozen=True)
class ApiLimits:
    """Bounds on what one client can make the node hold or do.

    Key and value sizes are the store's to enforce (`StoreConfig.max_key_bytes`,
    `max_value_bytes`), since replicated writes must meet them too.
    """

    max_frame: int = setting(DEFAULT_MAX_FRAME, "bytes", low=MIN_FRAME, high=MAX_FRAME)
    """Bytes. Largest request payload read, and largest reply sent (bigger replies become
    `too_large`). Raise it only together with `store.max_value_bytes` for very large values."""

    max_inflight_per_conn: int = setting(64, "requests", low=1)
    """Requests. How many requests of one connection run at once before the server stops
    reading it. Raise for clients that pipeline deeply over high-latency operations."""

    max_streams_per_conn: int = setting(16, "streams", low=0)
    """Streams. Open `watch` streams per connection; the next one gets `too_large`
    (0 refuses every `watch`)."""

    max_connections: int = setting(1024, "connections", low=1)
    """Connections. Beyond it a new client gets an `unavailable` reply and is closed, so a
    runaway swarm cannot exhaust the node's file descriptors."""

    watch_buffer_bytes: int = setting(4 << 20, "bytes", low=64 << 10)
    """Bytes. Changes a `watch` stream may have waiting to be sent (as stored); a watcher
    that falls further behind (it stopped reading) is ended with `too_large`, so an idle
    watcher cannot make the node hold an unbounded backlog."""

    listen_backlog: int = setting(512, "connections", low=1, high=65535)
    """Connections. Kernel accept queue; must absorb a swarm of agents connecting at once."""

    close_grace: float = setting(5.0, "s", low=0)
    """Seconds. How long `close()` lets in-flight requests finish before cancelling them.
    Lower it where a fast restart matters more than finishing slow operations."""

    frame_timeout: float = setting(30.0, "s", low=0, above=True, high=3600)
    """Seconds a client has to finish sending a request frame once the server has started
    reading it; a frame still incomplete then closes the connection. A 16 MiB frame
    crosses a Unix socket in milliseconds, so only a stalled or hostile client meets it;
    without it each stalled frame would hold its buffer for as long as the client likes."""

    max_buffered_bytes: int = setting(256 << 20, "bytes", low=MIN_FRAME)
    """Bytes. Partial request frames all connections together may make the node hold, counted
    by the length each frame declares as soon as its header is read. A header that would
    take the total past this closes its connection with `unavailable` (the requests read
    before it are still answered), so many clients sending large frames at once, or
    stalling in the middle of them, cannot grow the node's memory without bound. At least
    `max_frame`, so one largest frame always fits."""

    def __post_init__(self) -> None:
        check_settings(self, "api")
        if self.max_buffered_bytes < self.max_frame:
            raise refuse(
                "api",
                "max_buffered_bytes",
                self.max_buffered_bytes,
                f"below max_frame ({self.max_frame}): a largest frame could never be read",
            )
