"""The README's promise: `swarmnode run` with no flags gives a node that the shell and Python
find on their own. Only SWARMNODE_DATA_DIR is set (to keep the test off the user's real data);
everything else is the embedded defaults, the lan profile and gossip port 7117 included.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from nodeproc import clean_env, run_cli, spawn_node

from swarmnode.client import Client

DEFAULT_GOSSIP = ("127.0.0.1", 7117)


def _gossip_port_free() -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(DEFAULT_GOSSIP)
    except OSError:
        return False
    finally:
        probe.close()
    return True


@pytest.fixture
def default_node(short_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    if not _gossip_port_free():
        pytest.skip("127.0.0.1:7117 (the default gossip port) is taken by another process")
    data_dir = short_tmp / "swarmnode"
    env = clean_env(SWARMNODE_DATA_DIR=str(data_dir))
    node = spawn_node(None, env=env, profile=None, bind=None, log_path=short_tmp / "node.log")
    try:
        node.wait_ready()
        for name in [k for k in os.environ if k.startswith("SWARMNODE_")]:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("SWARMNODE_DATA_DIR", str(data_dir))
        yield node, env, data_dir
    finally:
        node.close()


def test_a_node_on_embedded_defaults_serves_the_shell_and_python(default_node) -> None:
    node, env, data_dir = default_node
    assert node.socket == data_dir / "run" / "swarmnode.sock"
    assert node.gossip == "127.0.0.1:7117"

    put = run_cli("put", "tasks", "t1", '{"state": "open"}', "--json-value", env=env)
    assert put.returncode == 0, put.stderr
    got = run_cli("get", "tasks", "t1", env=env)
    assert got.returncode == 0 and json.loads(got.stdout) == {"state": "open"}

    script = (
        "from swarmnode.client import Client\n"
        "with Client() as node:\n"
        "    node.put('notes', 'from-python', 'hello from Python')\n"
        "    print(node.get('tasks', 't1')['value']['state'])\n"
    )
    py = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert py.returncode == 0 and py.stdout == "open\n", py.stderr
    shell = run_cli("get", "notes", "from-python", env=env)
    assert shell.stdout == "hello from Python\n"

    with Client() as c:  # in this process, from the same environment variable alone
        assert c.get("notes", "from-python")["value"] == "hello from Python"
        assert c.stats()["node_id"] == node.node_id

    status = run_cli("status", env=env)
    assert status.returncode == 0 and node.node_id in status.stdout
    assert node.stop() == 0
    assert not node.socket.exists()
