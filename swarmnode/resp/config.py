"""The `[resp]` section: where the Redis-protocol front end listens, and its bounds.

Off unless `socket` or `bind` is set (`swarmnode run --resp-socket PATH
--resp-bind 127.0.0.1:6380`). RESP has no encryption: a `bind` that is not
loopback is refused unless the node requires agent tokens (`[agents]
require_tokens`: every TCP client must then `AUTH` with one) or runs with
`insecure = true`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swarmnode.resp.limits import RespLimits
from swarmnode.settings import ConfigError, check_settings, parse_address, refuse, setting

DEFAULT_RESP_PORT = 6380


@dataclass
class RespConfig:
    socket: str = setting("")
    """Unix socket path for RESP clients (redis-cli -s PATH); empty: none."""

    bind: str = setting("")
    """`HOST:PORT` for RESP over TCP (port 6380 if left out); empty: none."""

    max_connections: int = setting(1024, "connections", low=1)
    """Open RESP connections; one more is told `-ERR max number of clients reached`."""

    max_pending_per_conn: int = setting(256, "commands", low=1)
    """Commands of one connection started and not yet answered before it stops being read."""

    max_output_bytes: int = setting(8 << 20, "bytes", low=64 << 10)
    """Replies waiting to be written to one connection before it stops being read."""

    def __post_init__(self) -> None:
        check_settings(self, "resp")
        if self.bind:
            try:
                parse_address(self.bind, default_port=DEFAULT_RESP_PORT)
            except ConfigError as exc:
                raise refuse("resp", "bind", self.bind, str(exc).split(": ", 1)[-1]) from None

    @property
    def address(self) -> tuple[str, int] | None:
        if not self.bind:
            return None
        return parse_address(self.bind, default_port=DEFAULT_RESP_PORT)

    @property
    def socket_path(self) -> Path | None:
        return Path(self.socket).expanduser().resolve() if self.socket else None

    def limits(self) -> RespLimits:
        return RespLimits(
            max_connections=self.max_connections,
            max_pending_per_conn=self.max_pending_per_conn,
            max_output_bytes=self.max_output_bytes,
        )
