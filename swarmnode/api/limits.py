"""Bounds on what clients can make the node hold or do: the `[api]` section."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.api.framing import DEFAULT_MAX_FRAME


@dataclass(frozen=True)
class ApiLimits:
    """Bounds on what one client can make the node hold or do.

    Key and value sizes are the store's to enforce (`StoreConfig.max_key_bytes`,
    `max_value_bytes`), since replicated writes must meet them too.
    """

    max_frame: int = DEFAULT_MAX_FRAME
    """Bytes. Largest request payload read, and largest reply sent (bigger replies become
    `too_large`). Raise it only together with `store.max_value_bytes` for very large values."""

    max_inflight_per_conn: int = 64
    """Requests. How many requests of one connection run at once before the server stops
    reading it. Raise for clients that pipeline deeply over high-latency operations."""

    max_streams_per_conn: int = 16
    """Streams. Open `watch` streams per connection; the next one gets `too_large`."""

    max_connections: int = 1024
    """Connections. Beyond it a new client gets an `unavailable` reply and is closed, so a
    runaway swarm cannot exhaust the node's file descriptors."""

    watch_buffer_bytes: int = 4 << 20
    """Bytes. Changes a `watch` stream may have waiting to be sent (as stored); a watcher
    that falls further behind (it stopped reading) is ended with `too_large`, so an idle
    watcher cannot make the node hold an unbounded backlog."""

    listen_backlog: int = 512
    """Connections. Kernel accept queue; must absorb a swarm of agents connecting at once."""

    close_grace: float = 5.0
    """Seconds. How long `close()` lets in-flight requests finish before cancelling them.
    Lower it where a fast restart matters more than finishing slow operations."""
