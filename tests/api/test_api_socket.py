"""Who may reach the socket, and what the server does with a path somebody already used."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from swarmnode.api.server import ApiServer
from swarmnode.api.unixsock import ApiSocketError, SocketInUse, UnsafeSocketDirectory
from swarmnode.client import AsyncClient


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def ping(path: Path) -> Any:
    async with AsyncClient(path) as client:
        return await client.ping()


async def test_socket_is_owner_only_in_a_directory_created_owner_only(
    socket_path: Path, dispatcher: Any
) -> None:
    old_umask = os.umask(0)
    try:
        api = ApiServer(socket_path, dispatcher)
        await api.start()
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
        assert mode(socket_path) == 0o600
        assert mode(socket_path.parent) == 0o700
        assert await ping(socket_path) == {"op": "ping", "args": {}}
    finally:
        await api.close()
    assert not socket_path.exists()


async def test_a_directory_others_can_write_to_is_refused(
    socket_path: Path, dispatcher: Any
) -> None:
    socket_path.parent.mkdir()
    os.chmod(socket_path.parent, 0o775)
    with pytest.raises(UnsafeSocketDirectory, match="writable by group or others"):
        await ApiServer(socket_path, dispatcher).start()
    assert not socket_path.exists()


async def test_a_stale_socket_from_a_crashed_node_is_replaced(
    socket_path: Path, dispatcher: Any
) -> None:
    socket_path.parent.mkdir(mode=0o700)
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(socket_path))
    crashed.close()
    assert socket_path.exists()
    async with ApiServer(socket_path, dispatcher):
        assert await ping(socket_path) == {"op": "ping", "args": {}}
        assert mode(socket_path) == 0o600


async def test_a_second_server_on_a_live_path_is_refused(
    socket_path: Path, dispatcher: Any
) -> None:
    async with ApiServer(socket_path, dispatcher):
        with pytest.raises(SocketInUse, match="another swarmnode server is running"):
            await ApiServer(socket_path, dispatcher).start()
        assert await ping(socket_path) == {"op": "ping", "args": {}}


async def test_a_foreign_listener_on_the_path_is_not_replaced(
    socket_path: Path, dispatcher: Any
) -> None:
    socket_path.parent.mkdir(mode=0o700)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(socket_path))
    other.listen()
    try:
        with pytest.raises(SocketInUse, match="answering"):
            await ApiServer(socket_path, dispatcher).start()
        assert socket_path.exists()
    finally:
        other.close()


async def test_a_file_that_is_not_a_socket_is_never_removed(
    socket_path: Path, dispatcher: Any
) -> None:
    socket_path.parent.mkdir(mode=0o700)
    socket_path.write_text("precious")
    with pytest.raises(ApiSocketError, match="not a socket"):
        await ApiServer(socket_path, dispatcher).start()
    assert socket_path.read_text() == "precious"


async def test_a_path_too_long_for_a_unix_socket_is_refused_clearly(
    socket_dir: Path, dispatcher: Any
) -> None:
    with pytest.raises(ApiSocketError, match="longer than"):
        await ApiServer(socket_dir / ("d" * 120) / "api.sock", dispatcher).start()


async def test_the_path_is_free_again_after_close(socket_path: Path, dispatcher: Any) -> None:
    async with ApiServer(socket_path, dispatcher):
        pass
    async with ApiServer(socket_path, dispatcher):
        assert await ping(socket_path) == {"op": "ping", "args": {}}
