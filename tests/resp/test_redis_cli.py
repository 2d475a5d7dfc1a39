"""redis-cli, the command-line client every developer has, against a real node.

Debian's `redis-tools` package provides it; CI installs it. Without the binary
these tests are skipped and say why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from .conftest import RespNode, redis_cli_path

CLI = redis_cli_path()
pytestmark = pytest.mark.skipif(
    CLI is None, reason="redis-cli is not installed (Debian package redis-tools)"
)


def cli(node: RespNode, *args: str, transport: str = "unix", stdin: str | None = None) -> str:
    where = (
        ["-s", str(node.socket)] if transport == "unix" else ["-h", node.host, "-p", str(node.port)]
    )
    done = subprocess.run(
        [CLI, *where, *args], input=stdin, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_commands_and_errors(
    resp_node: RespNode, unique: Callable[[str], str], transport: str
) -> None:
    k = unique("cli")
    assert cli(resp_node, "SET", k, "hello world", transport=transport) == "OK\n"
    assert cli(resp_node, "GET", k, transport=transport) == "hello world\n"
    assert cli(resp_node, "--no-raw", "INCR", k + "n", transport=transport) == "(integer) 1\n"
    out = cli(resp_node, "--no-raw", "FOO", "bar", transport=transport)
    assert out == "(error) ERR unknown command 'FOO', with args beginning with: 'bar' \n"
    out = cli(resp_node, "--no-raw", "INCR", k, transport=transport)
    assert out == "(error) WRONGTYPE Operation against a key holding the wrong kind of value\n"


def test_resp3_and_sets(resp_node: RespNode, unique: Callable[[str], str]) -> None:
    s = unique("cli-set")
    cli(resp_node, "SADD", s, "a", "b")
    assert cli(resp_node, "-3", "--no-raw", "SMEMBERS", s) in (
        '1~ "a"\n2~ "b"\n',
        '1~ "b"\n2~ "a"\n',
    )
    hello = cli(resp_node, "-3", "--no-raw", "HELLO", "3")
    assert '"proto"' in hello and "(integer) 3" in hello


def test_pipe_mode_sends_a_stream_of_commands(
    resp_node: RespNode, unique: Callable[[str], str]
) -> None:
    k = unique("cli-pipe")
    script = "".join(f"INCR {k}\r\n" for _ in range(500)) + f"SET {k}s done\r\n"
    out = cli(resp_node, "--pipe", stdin=script)
    assert "errors: 0, replies: 501" in out
    assert cli(resp_node, "GET", k) == "500\n"


def test_command_docs_give_redis_cli_its_hints(resp_node: RespNode) -> None:
    out = cli(resp_node, "--no-raw", "COMMAND", "DOCS", "set")
    for word in ('"summary"', '"arguments"', '"NX"', '"KEEPTTL"', '"oneof"'):
        assert word in out
    assert cli(resp_node, "--no-raw", "COMMAND", "COUNT").startswith("(integer) ")
