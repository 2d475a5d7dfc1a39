"""What one RESP connection remembers between commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from swarmnode.api.server import RequestContext

if TYPE_CHECKING:
    from swarmnode.resp.pubsub import Subscriptions


class Session:
    """Protocol version, name, identity and subscriptions of one client connection.

    `push` writes an out-of-band reply (a pub/sub message) at once, ahead of
    replies still being computed; `close` ends the connection after the
    replies already queued (QUIT: its own reply included); `disconnect` ends
    it now (a subscriber whose notifications were lost).
    """

    __slots__ = (
        "authenticated",
        "close",
        "ctx",
        "disconnect",
        "id",
        "identity",
        "lib_name",
        "lib_ver",
        "name",
        "push",
        "resp3",
        "subscriptions",
    )

    def __init__(
        self,
        connection_id: int,
        ctx: RequestContext,
        *,
        authenticated: bool,
        push: Callable[[Any], None],
        close: Callable[[], None],
        disconnect: Callable[[], None],
    ) -> None:
        self.id = connection_id
        self.ctx = ctx
        self.authenticated = authenticated
        self.identity: str | None = None
        self.resp3 = False
        self.name: str | None = None
        self.lib_name: str | None = None
        self.lib_ver: str | None = None
        self.push = push
        self.close = close
        self.disconnect = disconnect
        self.subscriptions: Subscriptions | None = None

    @property
    def subscribed(self) -> int:
        """Channels plus patterns this connection listens to (Redis's subscription count)."""
        return self.subscriptions.count if self.subscriptions is not None else 0
