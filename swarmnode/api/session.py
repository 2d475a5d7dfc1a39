"""What one client connection has told the node about itself.

A `Session` lives as long as its connection and is shared by all of its
requests (it rides in each `RequestContext`). `hello` sets who the connection
speaks for; `peer_uid` is the connecting process's user id as the kernel
reports it (SO_PEERCRED), which says whether it is the socket's owner.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

_UCRED = struct.Struct("3i")


@dataclass
class Session:
    peer_uid: int | None = None
    """The peer's uid, or None when the transport cannot tell (not a Unix socket)."""
    agent: str | None = None
    """The agent a `hello` proved this connection speaks for (None: no token presented)."""
    token_id: str | None = None
    """The id of the token it presented: a later re-registration or revocation ends it."""

    @property
    def is_owner(self) -> bool:
        """Is the peer the user the node runs as (the socket's owner)?"""
        return self.peer_uid is not None and self.peer_uid == os.geteuid()


def peer_uid(sock: Any) -> int | None:
    """The uid of the process at the other end of a Unix socket (None if unknown)."""
    if sock is None or getattr(sock, "family", None) != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    return _UCRED.unpack(raw)[1]
