"""The Prometheus scrape endpoint's settings: the `[metrics]` section."""

from __future__ import annotations

from dataclasses import dataclass

from swarmnode.settings import (
    ConfigError,
    check_settings,
    is_loopback,
    parse_address,
    refuse,
    setting,
)

DEFAULT_METRICS_PORT = 9117


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
