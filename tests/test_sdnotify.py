"""sd_notify messages reach a real datagram socket (path or abstract); no socket, no harm."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from swarmnode.runtime import sdnotify


def receive_all(sock: socket.socket) -> list[str]:
    sock.settimeout(5)
    return [sock.recv(4096).decode() for _ in range(4)]


def test_ready_reloading_stopping_and_status_arrive_in_order(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        env = {"NOTIFY_SOCKET": str(path)}
        assert sdnotify.ready("serving on /run/x.sock", env)
        assert sdnotify.reloading(env)
        assert sdnotify.stopping(env)
        assert sdnotify.status("3 peers\nalive", env)
        ready, reload, stop, status = receive_all(sock)
    assert ready == "READY=1\nSTATUS=serving on /run/x.sock"
    assert reload.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert int(reload.rsplit("=", 1)[1]) > 0
    assert stop == "STOPPING=1"
    assert status == "STATUS=3 peers alive"


def test_an_abstract_socket_name_is_used_as_systemd_writes_it() -> None:
    name = f"swarmnode-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert sdnotify.ready(env={"NOTIFY_SOCKET": "@" + name})
        sock.settimeout(5)
        assert sock.recv(64) == b"READY=1"


def test_without_systemd_or_with_a_dead_socket_nothing_is_sent_and_nothing_raises(
    tmp_path: Path,
) -> None:
    assert sdnotify.ready(env={}) is False
    assert sdnotify.ready(env={"NOTIFY_SOCKET": "relative/path"}) is False
    assert sdnotify.ready(env={"NOTIFY_SOCKET": str(tmp_path / "nobody")}) is False
