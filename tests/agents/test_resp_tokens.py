"""Agent tokens on the Redis protocol: with tokens required, a TCP client must AUTH with one,
and then speaks for its agent (its access, its audit trail); the socket's owner on the
Unix socket needs none, as on the msgpack socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from nodeproc import NodeProcess, remove_dir, short_dir, start_node

WAIT = 60.0


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[NodeProcess, Path, int]]:
    base = short_dir("snr-")
    config = base / "node.toml"
    config.write_text("[agents]\nrequire_tokens = true\n")
    resp_socket = base / "redis.sock"
    proc = start_node(
        base / "data",
        "--config",
        str(config),
        "--resp-socket",
        str(resp_socket),
        "--resp-bind",
        "127.0.0.1:0",
    )
    try:
        deadline = time.monotonic() + WAIT
        line = None
        while line is None and time.monotonic() < deadline:
            line = next((x for x in proc._stdout if x.startswith("swarmnode resp:")), None)
            time.sleep(0.05)
        assert line is not None, proc.log()
        port = int(line.rsplit(":", 1)[1])
        yield proc, resp_socket, port
    finally:
        proc.close()
        remove_dir(base)


def test_a_tcp_client_must_auth_with_an_agent_token_and_then_acts_as_that_agent(
    node: tuple[NodeProcess, Path, int],
) -> None:
    proc, _, port = node
    with proc.client() as admin:
        token = admin.agent_register("rita", namespaces={"team": "write"})["token"]
        admin.ns_init("team")
        admin.ns_init("vault", readers=["role:ops"], writers=["role:ops"])
        admin.put("vault", "k", "admin only")

    anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=WAIT)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.get("team:k")
    wrong = redis.Redis(host="127.0.0.1", port=port, password="sn_nobody.x.y", socket_timeout=WAIT)
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()

    rita = redis.Redis(host="127.0.0.1", port=port, password=token, socket_timeout=WAIT)
    assert rita.set("team:plan", "ship friday")
    assert rita.get("team:plan") == b"ship friday"
    with pytest.raises(redis.exceptions.NoPermissionError, match="may not read namespace 'vault'"):
        rita.get("vault:k")
    with proc.client() as admin:
        assert admin.get("team", "plan")["agent"] == "rita"  # the write is audited as hers


def test_the_sockets_owner_needs_no_token_on_the_unix_socket(
    node: tuple[NodeProcess, Path, int],
) -> None:
    _, resp_socket, _ = node
    owner = redis.Redis(unix_socket_path=str(resp_socket), socket_timeout=WAIT)
    assert owner.set("vault:k2", "by the owner")
    assert owner.get("vault:k2") == b"by the owner"
