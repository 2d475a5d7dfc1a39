"""The Prometheus scrape endpoint: `GET /metrics` over HTTP on the node's event loop.

Off unless `[metrics] bind` is set. One request per connection, answered and closed
(`Connection: close`), which is all a scraper needs and keeps the server small:
- `GET /metrics` (or `HEAD`): 200 with the registry's text exposition
  (`text/plain; version=0.0.4`); any query string is ignored;
- any other path 404, any other method 405, a request line that is not HTTP 400;
- a request head (request line and headers) larger than `max_request_bytes` 431, and
  one not complete within `read_timeout` seconds is cut off, as is a client that does
  not read the answer within that time;
- beyond `max_connections` at once, a new connection is closed without an answer.

Rendering runs on the event loop, where function gauges may read loop-owned state
(see the thread rule in `swarmnode/metrics.py`).

The endpoint is unauthenticated, so it binds a loopback address unless the operator
sets `[metrics] allow_remote = true`; `MetricsConfig` refuses anything else, and
`MetricsServer.start` checks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from swarmnode.metrics import Registry
from swarmnode.settings import (
    ConfigError,
    check_settings,
    is_loopback,
    parse_address,
    refuse,
    setting,
)

log = logging.getLogger("swarmnode.metrics")

DEFAULT_METRICS_PORT = 9117
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format (`swarmnode.metrics.CONTENT_TYPE` is the same)."""


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint: the `[metrics]` section (off unless `bind` is given)."""

    bind: str = setting("")
    """`HOST:PORT` to serve `GET /metrics` on (port 9117 if left out); empty: no endpoint."""

    allow_remote: bool = setting(False)
    """Allow a `bind` address that is not loopback. The endpoint has no authentication and
    tells anyone who asks about the node's traffic and members, so serving it beyond the
    host is an explicit choice (put a firewall or a scraping proxy in front)."""

    max_request_bytes: int = setting(8192, "bytes", low=256, high=1 << 20)
    """Largest request head (request line and headers) read; a longer one is answered 431
    and the connection closed."""

    read_timeout: float = setting(5.0, "s", low=0, above=True)
    """Seconds a client has to send its whole request head before it is cut off."""

    max_connections: int = setting(16, "connections", low=1)
    """Scrapes served at once; more are closed at once, so a flood cannot use up the
    node's file descriptors."""

    def __post_init__(self) -> None:
        check_settings(self, "metrics")
        if not self.bind:
            return
        try:
            host, _ = parse_address(self.bind, default_port=DEFAULT_METRICS_PORT)
        except ConfigError as exc:
            raise refuse("metrics", "bind", self.bind, str(exc).split(": ", 1)[-1]) from None
        if not self.allow_remote and not is_loopback(host):
            raise refuse(
                "metrics",
                "bind",
                self.bind,
                "not a loopback address; the endpoint is unauthenticated, so set "
                "[metrics] allow_remote = true to serve it to other hosts",
            )

    @property
    def address(self) -> tuple[str, int] | None:
        """Where to listen, or None when the endpoint is off."""
        if not self.bind:
            return None
        return parse_address(self.bind, default_port=DEFAULT_METRICS_PORT)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


_OUTCOMES = {
    "scrapes": "scrape",
    "not_found": "not_found",
    "bad_requests": "bad_request",
    "refused": "refused",
    "cut_off": "cut_off",
}
"""`stats` key -> `outcome` label of swarmnode_metrics_http_requests_total."""


class MetricsServer:
    """Serves `render()` (the registry's exposition) at `GET /metrics`."""

    def __init__(
        self,
        render: Callable[[], bytes],
        config: MetricsConfig,
        *,
        metrics: Registry | None = None,
    ) -> None:
        if config.address is None:
            raise ValueError("the metrics endpoint is off: [metrics] bind is empty")
        self._render = render
        self._config = config
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Task[None]] = set()
        requests = (metrics if metrics is not None else Registry()).counter(
            "swarmnode_metrics_http_requests_total",
            "Requests to the metrics endpoint, by outcome: scrape (served), not_found, "
            "bad_request, refused (too many at once), cut_off (too slow).",
            labels=("outcome",),
        )
        self._counts = {key: requests.labels(outcome) for key, outcome in _OUTCOMES.items()}

    @property
    def stats(self) -> dict[str, int]:
        """Requests since start, by outcome (`scrapes`, `not_found`, `bad_requests`,
        `refused`, `cut_off`)."""
        return {key: int(child.value) for key, child in self._counts.items()}

    def _count(self, key: str) -> None:
        self._counts[key].inc()

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when the config asked for port 0)."""
        assert self._server is not None, "not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        address = self._config.address
        assert address is not None
        host, port = address
        if not self._config.allow_remote and not is_loopback(host):
            raise refuse("metrics", "bind", self._config.bind, "not a loopback address")
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=self._config.max_request_bytes
        )
        log.info("event=metrics_listening address=%s:%d", *self.address)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._open):
                task.cancel()
            await asyncio.gather(*self._open, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._open) >= self._config.max_connections:
            self._count("refused")
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        try:
            await self._serve(reader, writer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            self._count("cut_off")
        finally:
            self._open.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = self._config.read_timeout
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except asyncio.LimitOverrunError:
            self._count("bad_requests")
            await self._answer(writer, 431, b"request head too large\n")
            return
        status, body, head_only = self._respond(head)
        await self._answer(writer, status, body, head_only=head_only)

    def _respond(self, head: bytes) -> tuple[int, bytes, bool]:
        """(status, body, HEAD request) for one request head."""
        request_line = head.split(b"\r\n", 1)[0]
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._count("bad_requests")
            return 400, b"not an HTTP/1.x request\n", False
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            self._count("bad_requests")
            return 405, b"only GET and HEAD\n", False
        if target.split(b"?", 1)[0] != b"/metrics":
            self._count("not_found")
            return 404, b"metrics are at /metrics\n", method == b"HEAD"
        try:
            body = self._render()
        except Exception:
            log.exception("event=metrics_render_failed")
            return 500, b"rendering the metrics failed; see the node's log\n", False
        self._count("scrapes")
        return 200, body, method == b"HEAD"

    async def _answer(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, *, head_only: bool = False
    ) -> None:
        content_type = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Allow: GET, HEAD\r\n" if status == 405 else "")
            + "Connection: close\r\n\r\n"
        )
        writer.write(head.encode("ascii") + (b"" if head_only else body))
        await asyncio.wait_for(writer.drain(), self._config.read_timeout)
