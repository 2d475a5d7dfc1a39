"""Bytes to and from a RESP server, to send what no client library would."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from swarmnode.resp.codec import ReplyParser


class RawResp:
    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.parser = ReplyParser()
        self.pending: list[Any] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def replies(self, n: int) -> list[Any]:
        """The next `n` replies; AssertionError if the server closes first."""
        while len(self.pending) < n:
            data = self.sock.recv(1 << 16)
            assert data, f"closed after {len(self.pending)} of {n} replies: {self.pending!r}"
            self.pending += self.parser.feed(data)
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def closed(self) -> bool:
        """True once the server has closed the connection, with nothing more to read."""
        data = self.sock.recv(1 << 16)
        self.pending += self.parser.feed(data)
        return not data and not self.pending

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawResp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
