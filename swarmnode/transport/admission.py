"""Who may hold an inbound stream, and how many bytes its frames may make this node buffer.

Inbound connections live in two pools, so that connections without the
cluster key can never take the slots real peers need:

- *Unauthenticated*: connected, hello not yet accepted. A small pool, capped in
  total and per source address, and each connection has a short deadline (the
  endpoint's `stream_hello_timeout`). A new connection that would exceed a cap
  sheds the *oldest* unauthenticated connection: of its own address if that
  address is at its cap, else of all. A real peer sends its hello one round
  trip after connecting, so it is never the oldest for long, while idle
  connections are: to keep a real peer out, a flood has to open connections
  faster than the peer's handshake completes, rather than just sit there.
  Refusing the newcomer instead would let a few idle connections shut
  everyone out until their deadline.
- *Authenticated*: hello accepted. Capped in total and per source address;
  a connection that authenticates while its pool is full is refused.

Buffered bytes are reserved before a frame body is read and released once the
frame is handled: an authenticated frame that would take its address or the
whole node over its cap is refused. An unauthenticated connection only ever
holds its hello (the caller caps it), which counts towards the total but is
never refused here: the pool's size already bounds it.

Sans-IO: connections are opaque hashable handles; the caller closes what this
says to shed or refuse.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)


class Refusal(enum.Enum):
    """Which cap turned a connection or a frame away."""

    INBOUND_CAP = enum.auto()
    ADDRESS_CAP = enum.auto()
    BUFFER_CAP = enum.auto()
    ADDRESS_BUFFER_CAP = enum.auto()


@dataclass(frozen=True)
class StreamCaps:
    """The limits InboundAdmission enforces (see TransportConfig for each one's reason)."""

    unauthenticated: int
    unauthenticated_per_address: int
    authenticated: int
    authenticated_per_address: int
    buffer_bytes: int
    buffer_bytes_per_address: int


class InboundAdmission(Generic[C]):
    """The two pools of inbound connections and the bytes they hold."""

    def __init__(self, caps: StreamCaps) -> None:
        self.caps = caps
        self._pending: OrderedDict[C, str] = OrderedDict()
        self._pending_by_host: dict[str, OrderedDict[C, None]] = {}
        self._authenticated: dict[C, str] = {}
        self._authenticated_by_host: Counter[str] = Counter()
        self._held: Counter[C] = Counter()
        self._held_by_host: Counter[str] = Counter()
        self.buffered_bytes = 0
        self.buffered_bytes_peak = 0

    @property
    def unauthenticated(self) -> int:
        return len(self._pending)

    @property
    def authenticated(self) -> int:
        return len(self._authenticated)

    def arrive(self, conn: C, host: str) -> list[C]:
        """Admit a new connection to the unauthenticated pool; returns those it sheds."""
        shed: list[C] = []
        same_host = self._pending_by_host.get(host)
        if same_host is not None and len(same_host) >= self.caps.unauthenticated_per_address:
            shed.append(next(iter(same_host)))
        elif len(self._pending) >= self.caps.unauthenticated:
            shed.append(next(iter(self._pending)))
        for old in shed:
            self.leave(old)
        self._pending[conn] = host
        self._pending_by_host.setdefault(host, OrderedDict())[conn] = None
        return shed

    def authenticate(self, conn: C) -> Refusal | None:
        """Move a connection whose hello was accepted to the authenticated pool, if it fits.

        What it held for its hello is released. A refused connection is in
        neither pool afterwards; the caller closes it.
        """
        if conn in self._pending:
            self.release(conn)
        host = self._drop_pending(conn)
        if host is None:
            raise ValueError("only an unauthenticated connection can authenticate")
        if len(self._authenticated) >= self.caps.authenticated:
            return Refusal.INBOUND_CAP
        if self._authenticated_by_host[host] >= self.caps.authenticated_per_address:
            return Refusal.ADDRESS_CAP
        self._authenticated[conn] = host
        self._authenticated_by_host[host] += 1
        return None

    def hold(self, conn: C, nbytes: int) -> Refusal | None:
        """Reserve `nbytes` of buffer for a connection's next frame, if the caps allow."""
        host = self._authenticated.get(conn)
        if host is None:
            host = self._pending.get(conn)
            if host is None:
                raise ValueError("the connection was not admitted or has left")
        else:
            if self.buffered_bytes + nbytes > self.caps.buffer_bytes:
                return Refusal.BUFFER_CAP
            if self._held_by_host[host] + nbytes > self.caps.buffer_bytes_per_address:
                return Refusal.ADDRESS_BUFFER_CAP
        self._held[conn] += nbytes
        self._held_by_host[host] += nbytes
        self.buffered_bytes += nbytes
        self.buffered_bytes_peak = max(self.buffered_bytes_peak, self.buffered_bytes)
        return None

    def release(self, conn: C) -> None:
        """Give back everything a connection holds."""
        nbytes = self._held.pop(conn, 0)
        if not nbytes:
            return
        host = self._authenticated.get(conn) or self._pending[conn]
        self._held_by_host[host] -= nbytes
        if not self._held_by_host[host]:
            del self._held_by_host[host]
        self.buffered_bytes -= nbytes

    def leave(self, conn: C) -> None:
        """Forget a connection that closed, whichever pool it was in; idempotent."""
        if conn in self._pending or conn in self._authenticated:
            self.release(conn)
        self._drop_pending(conn)
        host = self._authenticated.pop(conn, None)
        if host is not None:
            self._authenticated_by_host[host] -= 1
            if not self._authenticated_by_host[host]:
                del self._authenticated_by_host[host]

    def _drop_pending(self, conn: C) -> str | None:
        host = self._pending.pop(conn, None)
        if host is not None:
            same_host = self._pending_by_host[host]
            del same_host[conn]
            if not same_host:
                del self._pending_by_host[host]
        return host
