"""Starting, stopping and crashing real node processes: identity, locks, sockets, restarts."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from nodeproc import NodeProcess, run_cli, spawn_node

from swarmnode.client import Client
from swarmnode.errors import Unavailable


def test_the_socket_is_owner_only_in_a_directory_only_the_owner_can_enter(node) -> None:
    sock = os.stat(node.socket)
    assert stat.S_ISSOCK(sock.st_mode)
    assert stat.S_IMODE(sock.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node.socket.parent).st_mode) == 0o700
    assert node.socket == node.data_dir / "run" / "swarmnode.sock"
    assert stat.S_IMODE(os.stat(node.data_dir).st_mode) == 0o700


def test_a_socket_path_of_ones_choosing_gets_the_same_protection(launch_node, short_tmp) -> None:
    node = launch_node(socket_path=short_tmp / "sockets" / "agent.sock")
    assert node.socket == short_tmp / "sockets" / "agent.sock"
    assert stat.S_IMODE(os.stat(node.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node.socket.parent).st_mode) == 0o700
    with node.client() as c:
        assert c.ping()["pong"]


def test_a_graceful_stop_exits_zero_removes_the_socket_and_keeps_the_data(
    launch_node: Callable[..., NodeProcess],
) -> None:
    node = launch_node()
    with node.client() as c:
        c.put("default", "k", "kept")
    assert node.stop() == 0
    assert not node.socket.exists()
    again = launch_node(node.data_dir)
    with again.client() as c:
        assert c.get("default", "k")["value"] == "kept"


def test_the_node_id_is_kept_across_restarts_and_renewed_after_a_wipe(launch_node) -> None:
    node = launch_node()
    with node.client() as c:
        assert c.ping()["node_id"] == node.node_id
    node.kill()
    again = launch_node(node.data_dir)
    assert again.node_id == node.node_id
    again.stop()
    shutil.rmtree(node.data_dir)
    fresh = launch_node(node.data_dir)
    assert fresh.node_id != node.node_id
    with fresh.client() as c:
        assert c.ping()["node_id"] == fresh.node_id


def test_a_stale_socket_left_by_a_sigkilled_node_is_handled(launch_node) -> None:
    node = launch_node()
    node.kill()
    assert node.socket.exists()
    with pytest.raises(Unavailable, match="is the node running"):
        Client(node.socket, timeout=10).ping()
    cli = run_cli("ping", socket_path=node.socket)
    assert cli.returncode == 6 and "is the node running?" in cli.stderr

    again = launch_node(node.data_dir)
    assert again.socket == node.socket
    with again.client() as c:
        assert c.ping()["pong"]


def test_a_second_node_on_the_same_data_dir_is_refused_and_the_first_serves_on(
    launch_node, short_tmp: Path
) -> None:
    first = launch_node()
    inode = os.stat(first.socket).st_ino
    for socket_path in (None, short_tmp / "other.sock"):
        second = spawn_node(first.data_dir, socket_path=socket_path)
        assert second.wait_exit() != 0
        log = second.log()
        assert "in use by another swarmnode" in log, log
        assert f"pid {first.proc.pid}" in log, log
        assert "Traceback" not in log, log
    assert first.alive
    assert os.stat(first.socket).st_ino == inode
    with first.client() as c:
        c.put("default", "still", "mine")
        assert c.get("default", "still")["value"] == "mine"


def test_a_second_node_on_the_same_socket_is_refused_and_the_first_serves_on(
    launch_node, short_tmp: Path
) -> None:
    first = launch_node()
    second = spawn_node(short_tmp / "elsewhere", socket_path=first.socket)
    assert second.wait_exit() != 0
    log = second.log()
    assert str(first.socket) in log and "another swarmnode" in log, log
    assert "Traceback" not in log, log
    with first.client() as c:
        assert c.ping()["node_id"] == first.node_id


def test_a_node_id_that_does_not_match_the_data_is_refused(launch_node, short_tmp) -> None:
    node = launch_node()
    node.stop()
    wrong = spawn_node(node.data_dir, "--node-id", "0123456789abcdef")
    assert wrong.wait_exit() != 0
    assert f"belongs to node {node.node_id}" in wrong.log()
    right = launch_node(node.data_dir, "--node-id", node.node_id)
    assert right.node_id == node.node_id


def test_a_socket_directory_others_can_write_to_is_refused(short_tmp: Path) -> None:
    unsafe = short_tmp / "shared"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    node = spawn_node(short_tmp / "data", socket_path=unsafe / "s.sock")
    assert node.wait_exit() != 0
    assert "writable by group or others" in node.log()
    assert not (unsafe / "s.sock").exists()
