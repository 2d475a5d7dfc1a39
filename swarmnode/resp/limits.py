"""Per-server and per-connection bounds of the RESP front end, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmnode.resp.codec import CodecLimits


@dataclass(frozen=True)
class RespLimits:
    codec: CodecLimits = field(default_factory=CodecLimits)
    """What one command may make the parser buffer (see `CodecLimits`)."""
    max_connections: int = 1024
    """Open connections; one more is told `-ERR max number of clients reached` and closed."""
    max_pending_per_conn: int = 256
    """Commands of one connection started but not yet answered. At the bound the server stops
    reading the socket, so a client pipelining faster than the node works is slowed by the
    kernel's buffer, not by the node's memory."""
    max_output_bytes: int = 8 << 20
    """Replies waiting in a connection's write buffer before it stops being read."""
    max_pubsub_output_bytes: int = 32 << 20
    """Unsent notifications a subscriber may fall behind by before it is disconnected
    (Redis's client-output-buffer-limit for pubsub)."""
    max_scan_cursors: int = 10_000
    """SCAN cursors remembered server-wide (oldest forgotten first; a forgotten cursor is an
    error, never a silent restart)."""
    namespace_cache_s: float = 1.0
    """How long the namespace list that maps `ns:key` is reused before it is read again."""
    listen_backlog: int = 511
    """Pending connections the kernel queues (Redis's tcp-backlog)."""
    close_grace: float = 5.0
    """Seconds running commands get to finish when the server closes."""
