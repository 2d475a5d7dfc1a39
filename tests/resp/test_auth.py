"""A node whose RESP front end requires AUTH (the authenticate hook, here one test token)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from nodeproc import remove_dir, short_dir

from swarmnode.resp.codec import ErrorReply, SimpleString, encode_command

from .conftest import RespNode, start_resp_node
from .rawclient import RawResp

TOKEN = "agent-token-1"


@pytest.fixture(scope="module")
def auth_node() -> Iterator[RespNode]:
    base = short_dir("sa-")
    node = start_resp_node(base, "--resp-token", TOKEN)
    yield node
    node.close()
    remove_dir(base)


def test_commands_need_auth_first(auth_node: RespNode) -> None:
    with RawResp(auth_node.socket) as c:
        c.send(encode_command("GET", "k") + encode_command("HELLO", "3")
               + encode_command("AUTH", "x") + encode_command("PING"))  # fmt: skip
        noauth, hello, wrongpass, still = c.replies(4)
    assert noauth == ErrorReply("NOAUTH Authentication required.")
    assert hello.text.startswith("NOAUTH HELLO must be called with the client already")
    assert wrongpass.text.startswith("WRONGPASS")
    assert still == noauth
    with RawResp(auth_node.socket) as c:
        c.send(encode_command("AUTH", "any-user", TOKEN) + encode_command("PING"))
        assert c.replies(2) == [SimpleString("OK"), SimpleString("PONG")]
    r = redis.Redis(unix_socket_path=str(auth_node.socket), socket_timeout=60)
    with pytest.raises(redis.AuthenticationError, match="must be called with the client already"):
        r.get("k")  # redis-py opens with HELLO, as it would against Redis with a password
    r.close()


def test_client_with_password_and_resp3_hello_auth(auth_node: RespNode) -> None:
    r = redis.Redis(
        host=auth_node.host, port=auth_node.port, password=TOKEN, protocol=3, socket_timeout=60
    )
    assert r.ping() is True
    r.close()
    bad = redis.Redis(unix_socket_path=str(auth_node.socket), password="nope", socket_timeout=60)
    with pytest.raises(redis.AuthenticationError):
        bad.ping()
    bad.close()
